"""Writes the models the examples point at (iris sklearn classifier, ONNX MLP + golden set).

Usage: python examples/make_models.py [ROOT]   (default /var/lib/modelship/models, the node's path
that the examples' file:// URIs name on the single-node development cluster).
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def write_iris(root: Path) -> Path:
    """A logistic regression on iris, saved with joblib (examples/sklearn-iris.yaml)."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x.astype(np.float32), y)
    path = root / "iris" / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def write_mlp(root: Path) -> Path:
    """A 16-64-4 ReLU MLP and a labelled golden set it agrees with (examples/onnx-mlp.yaml)."""
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.5, (16, 64)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (64, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = root / "mlp" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    x = rng.normal(0, 1, (512, 16)).astype(np.float32)
    labels = (np.maximum(x @ w1, 0) @ w2).argmax(axis=1)
    np.savez(root / "mlp" / "golden.npz", x=x, y=labels)
    return path


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/var/lib/modelship/models")
    for path in (write_iris(root), write_mlp(root)):
        path.parent.chmod(0o755)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
