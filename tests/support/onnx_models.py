"""Small ONNX models written in tests, for runtimes and operators to serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_linear_onnx(path: Path, weights: np.ndarray[Any, Any]) -> None:
    """y = x @ weights, with a dynamic batch axis; IR 8 so any recent ONNX Runtime loads it."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weights.shape[1]])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# The build's memory limit a slow model needs: timing it at the build's throughput batch holds
# about 4.8 GB (max RSS of `modelship-runtime build` on it, measured 2026-12-07), over the
# operator's 4Gi default (spec.optimization.resources raises it).
SLOW_BUILD_RESOURCES = {"limits": {"memory": "8Gi"}}


def write_slow_linear_onnx(
    path: Path,
    weights: np.ndarray[Any, Any],
    *,
    copies: int = 2048,
    layers: int = 8,
    width: int = 512,
) -> None:
    """y = x @ weights, the same signature as write_linear_onnx, made slow on purpose: each row
    is copied `copies` times and carried through `layers` width x width permutations (dense
    MatMuls, exact in float) before the copies are averaged back. A canary that answers right,
    only slower."""
    rows, cols = weights.shape
    rng = np.random.default_rng(7)
    permutation = np.eye(width, dtype=np.float32)[rng.permutation(width)]
    widen = np.zeros((rows, width), dtype=np.float32)
    widen[:, :rows] = np.eye(rows, dtype=np.float32)
    # Undo the permutations, then apply the weights: the output is exactly x @ weights.
    undo = np.linalg.matrix_power(permutation, layers).T
    narrow = (undo[:, :rows] @ weights).astype(np.float32)
    nodes = [
        helper.make_node("Tile", ["x", "repeats"], ["tiled"]),
        helper.make_node("MatMul", ["tiled", "widen"], ["h0"]),
        *[
            helper.make_node("MatMul", [f"h{i}", "permutation"], [f"h{i + 1}"])
            for i in range(layers)
        ],
        helper.make_node("MatMul", [f"h{layers}", "narrow"], ["copied"]),
        helper.make_node("Reshape", ["copied", "split"], ["stacked"]),
        helper.make_node("ReduceMean", ["stacked", "first"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "slow-linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, cols])],
        [
            numpy_helper.from_array(np.array([copies, 1], dtype=np.int64), "repeats"),
            numpy_helper.from_array(widen, "widen"),
            numpy_helper.from_array(permutation, "permutation"),
            numpy_helper.from_array(narrow, "narrow"),
            numpy_helper.from_array(np.array([copies, -1, cols], dtype=np.int64), "split"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "first"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
