"""Small real models trained in the test session, saved as users save them, with validation data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib
import lightgbm
import numpy as np
import onnx
import xgboost
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

Predict = Callable[[np.ndarray], tuple[np.ndarray | None, np.ndarray]]


@dataclass(frozen=True)
class TrainedModel:
    name: str
    format: str
    path: Path
    validation: Path
    predict: Predict  # the original model: (labels or None, scores)
    unsafe: bool  # saved with pickle/joblib: needs --allow-unsafe-formats
    signature: str | None = None


def _classification(
    rows: int, features: int, classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=min(features, 6),
        n_classes=classes,
        random_state=seed,
    )
    return x.astype(np.float32), y


def train_logistic(directory: Path) -> TrainedModel:
    x, y = _classification(600, 10, 2, seed=1)
    model = LogisticRegression(max_iter=500).fit(x[:400], y[:400])
    path = directory / "logistic.joblib"
    joblib.dump(model, path)
    np.savez(directory / "logistic-val.npz", x=x[400:], y=y[400:])
    return TrainedModel(
        "logistic",
        "sklearn",
        path,
        directory / "logistic-val.npz",
        lambda a: (model.predict(a), model.predict_proba(a)),
        unsafe=True,
    )


def train_forest_pipeline(directory: Path) -> TrainedModel:
    x, y = _classification(600, 12, 3, seed=2)
    model = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)
    ).fit(x[:400], y[:400])
    path = directory / "forest.pkl"
    joblib.dump(model, path)
    np.savez(directory / "forest-val.npz", x=x[400:], y=y[400:])
    return TrainedModel(
        "forest-pipeline",
        "sklearn",
        path,
        directory / "forest-val.npz",
        lambda a: (model.predict(a), model.predict_proba(a)),
        unsafe=True,
    )


def train_xgboost(directory: Path) -> TrainedModel:
    x, y = _classification(600, 8, 2, seed=3)
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x[:400], y[:400])
    path = directory / "xgb.json"
    model.save_model(path)  # the native format: loading it runs no code
    np.savez(directory / "xgb-val.npz", x=x[400:], y=y[400:])
    return TrainedModel(
        "xgboost",
        "xgboost",
        path,
        directory / "xgb-val.npz",
        lambda a: (model.predict(a), model.predict_proba(a)),
        unsafe=False,
    )


def train_lightgbm_regressor(directory: Path) -> TrainedModel:
    x, y = make_regression(n_samples=600, n_features=8, noise=5.0, random_state=4)
    x = x.astype(np.float32)
    model = lightgbm.LGBMRegressor(n_estimators=30, num_leaves=8, verbose=-1, n_jobs=1)
    model.fit(x[:400], y[:400])
    path = directory / "lgbm.txt"
    model.booster_.save_model(str(path))  # the native text format
    np.savez(directory / "lgbm-val.npz", x=x[400:], y=y[400:].astype(np.float32))
    return TrainedModel(
        "lightgbm-regressor",
        "lightgbm",
        path,
        directory / "lgbm-val.npz",
        lambda a: (None, model.predict(a).reshape(-1, 1)),
        unsafe=False,
    )


def clustered_mlp(
    directory: Path,
    dims: tuple[int, ...],
    *,
    rows: int = 600,
    seed: int = 0,
    name: str = "mlp",
    noise: float = 0.6,
) -> tuple[Path, Path, Callable[[np.ndarray], np.ndarray]]:
    """An ONNX MLP with random hidden layers and a last layer fitted by least squares.

    On clustered inputs its classes have wide margins, as a trained network's would, so INT8's
    small errors rarely flip a prediction: a realistic accuracy check without a training loop.
    """
    rng = np.random.default_rng(seed)
    classes = dims[-1]
    centers = rng.standard_normal((classes, dims[0])).astype(np.float32)
    labels = rng.integers(0, classes, size=rows)
    x = (centers[labels] + noise * rng.standard_normal((rows, dims[0]))).astype(np.float32)
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    hidden = x
    for fan_in, fan_out in itertools.pairwise(dims[:-1]):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        weights.append(w)
        biases.append(np.zeros(fan_out, np.float32))
        hidden = np.maximum(hidden @ w, 0)
    targets = np.eye(classes, dtype=np.float32)[labels] * 4 - 2
    last, *_ = np.linalg.lstsq(hidden[: rows // 2], targets[: rows // 2], rcond=None)
    weights.append(last.astype(np.float32))
    biases.append(np.zeros(classes, np.float32))

    nodes, inits, previous = [], [], "x"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"]))
        last_layer = i == len(weights) - 1
        nodes.append(
            helper.make_node("Add", [f"m{i}", f"b{i}"], ["logits" if last_layer else f"z{i}"])
        )
        if not last_layer:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i}"]))
            previous = f"h{i}"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, dims[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = directory / f"{name}.onnx"
    onnx.save(model, path)
    validation = directory / f"{name}-val.npz"
    np.savez(validation, x=x[rows // 2 :], y=labels[rows // 2 :])

    def forward(a: np.ndarray) -> np.ndarray:
        h = a
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0)
        return np.asarray(h @ weights[-1] + biases[-1])

    return path, validation, forward


def torch_available() -> str | None:
    """None when a CPU PyTorch imports here; otherwise exactly what failed."""
    try:
        import torch  # noqa: PLC0415 - absent here; the caller reports why
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    del torch
    return None
