"""TensorFlow and Keras models made here, built to ONNX, then served: the runtime's answers on
the Open Inference Protocol and on TF Serving's REST API (sent as TF Serving clients send it)
equal TensorFlow's own within 1e-4; what cannot convert fails naming the op."""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.build.conftest import upload
from tests.integration.build.s3server import S3Server
from tests.integration.runtime.server_process import served
from tests.support.json_http import post

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

keras = tf.keras

pytestmark = pytest.mark.integration
TOLERANCE = 1e-4
FEATURES = 8


def _clusters(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=n)
    centers = rng.normal(scale=3.0, size=(3, FEATURES))
    x = (centers[y] + rng.normal(size=(n, FEATURES))).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """A trained Keras 3 classifier, saved as .keras and .h5, and its validation rows."""
    directory = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _clusters(600)
    model.fit(x[:400], y[:400], epochs=40, verbose=0)
    model.save(directory / "model.keras")
    model.save(directory / "model.h5")
    np.savez(directory / "validation.npz", x=x[400:], y=y[400:])
    yield model, directory


class Pair(tf.Module):
    """A SavedModel with two inputs and two outputs, written without Keras."""

    def __init__(self) -> None:
        super().__init__()
        weights = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)
        self.weights = tf.Variable(weights)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32, name="a"),
            tf.TensorSpec([None, 4], tf.float32, name="b"),
        ]
    )
    def serve(self, a: Any, b: Any) -> dict[str, Any]:
        return {
            "scores": tf.nn.tanh(tf.matmul(a + b, self.weights)),
            "dot": tf.reduce_sum(a * b, axis=1, keepdims=True),
        }


class Unconvertible(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: Any) -> dict[str, Any]:
        return {"y": tf.math.lgamma(x)}  # ONNX has no Lgamma; tf2onnx has no mapping for it


def _saved_model(module: Any, folder: Path) -> Path:
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def _tar_gz(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname="1")  # TF Serving's layout: a numbered version folder
    return path


def _zip(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, file.relative_to(folder).as_posix())
    return path


def _serve_and_compare(
    output: Path, tmp_path: Path, inputs: dict[str, np.ndarray], want: dict[str, np.ndarray]
) -> None:
    """Serve the build's output; V2 and TF Serving (row and columnar) answers equal `want`."""
    with served(output, "m", tmp_path) as server:
        base = server.base
        v2 = post(
            f"{base}/v2/models/m/infer",
            {
                "inputs": [
                    {
                        "name": k,
                        "datatype": "FP32",
                        "shape": list(v.shape),
                        "data": v.ravel().tolist(),
                    }
                    for k, v in inputs.items()
                ]
            },
        )
        got = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in v2["outputs"]}
        columnar = post(
            f"{base}/v1/models/m:predict", {"inputs": {k: v.tolist() for k, v in inputs.items()}}
        )["outputs"]
        rows = len(next(iter(inputs.values())))
        instances = [{k: v[i].tolist() for k, v in inputs.items()} for i in range(rows)]
        predictions = post(f"{base}/v1/models/m:predict", {"instances": instances})["predictions"]
        for name, expected in want.items():
            assert np.max(np.abs(got[name] - expected)) <= TOLERANCE, name
            answer = columnar[name] if isinstance(columnar, dict) else columnar
            assert np.max(np.abs(np.asarray(answer) - expected)) <= TOLERANCE, name
            row_answer = [p[name] if isinstance(p, dict) else p for p in predictions]
            assert np.max(np.abs(np.asarray(row_answer) - expected)) <= TOLERANCE, name


@pytest.mark.parametrize("file", ["model.keras", "model.h5"])
def test_keras_model_builds_validates_and_serves_tensorflows_answers(
    file: str, keras_model: tuple[Any, Path], build: Any, s3: S3Server, tmp_path: Path
) -> None:
    model, directory = keras_model
    source = (
        (directory / file).as_uri()
        if file.endswith(".keras")
        else upload(s3, directory / file, "sources/model.h5")
    )
    result = build(
        "--source", source, "--format", "keras", "--quantization", "none",
        "--validation-data", str(directory / "validation.npz"),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    # The signature comes from the Keras model: no --signature was given.
    assert manifest["signature"]["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]}
    ]
    assert [o["name"] for o in manifest["signature"]["outputs"]] == ["probabilities"]
    # The validation ran TensorFlow on the same rows: the ONNX model's accuracy is TensorFlow's.
    validation = np.load(directory / "validation.npz")
    own = float(np.mean(np.argmax(model(validation["x"], training=False), 1) == validation["y"]))
    selected = next(v for v in manifest["variants"] if v["selected"])
    assert selected["passed"] and selected["metrics"]["accuracy"] == pytest.approx(own)
    assert own >= 0.9
    assert result.summary["ok"] is True
    assert manifest["tools"]["tensorflow"] == tf.__version__

    x = np.load(directory / "validation.npz")["x"][:16]
    want = np.asarray(model(x, training=False))
    _serve_and_compare(result.output, tmp_path, {"features": x}, {"probabilities": want})


@pytest.mark.parametrize("pack", ["tar.gz", "zip"])
def test_saved_model_archive_builds_and_serves_tensorflows_answers(
    pack: str, build: Any, s3: S3Server, tmp_path: Path
) -> None:
    module = Pair()
    folder = _saved_model(module, tmp_path / "savedmodel")
    archive = (_tar_gz if pack == "tar.gz" else _zip)(folder, tmp_path / f"model.{pack}")
    source = archive.as_uri() if pack == "zip" else upload(s3, archive, f"sources/m.{pack}")
    result = build("--source", source, "--format", "tensorflow", "--quantization", "none")
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    assert [i["name"] for i in manifest["signature"]["inputs"]] == ["a", "b"]
    assert sorted(o["name"] for o in manifest["signature"]["outputs"]) == ["dot", "scores"]

    rng = np.random.default_rng(3)
    inputs = {name: rng.normal(size=(5, 4)).astype(np.float32) for name in ("a", "b")}
    loaded = tf.saved_model.load(str(folder)).signatures["serving_default"]
    want = {
        k: np.asarray(v)
        for k, v in loaded(**{k: tf.constant(v) for k, v in inputs.items()}).items()
    }
    _serve_and_compare(result.output, tmp_path, inputs, want)


def test_an_op_with_no_onnx_conversion_fails_the_build_naming_it(
    build: Any, tmp_path: Path
) -> None:
    folder = _saved_model(Unconvertible(), tmp_path / "savedmodel")
    archive = _tar_gz(folder, tmp_path / "lgamma.tar.gz")
    result = build("--source", archive.as_uri(), "--format", "tensorflow")
    assert result.code != 0
    assert result.summary["ok"] is False
    assert "Lgamma" in result.summary["error"], result.summary
    assert "tf2onnx cannot convert" in result.summary["error"]


def test_a_keras_lambda_layer_is_refused_before_its_code_runs(
    build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    monkeypatch.setenv("MODELSHIP_TEST_MARKER", str(marker))
    inputs = keras.Input((4,), name="x")
    # Saved as Python bytecode: loading it would run it, and running it leaves the marker.
    outputs = keras.layers.Lambda(
        lambda t: (__import__("os").makedirs(__import__("os").environ["MODELSHIP_TEST_MARKER"]), t)[
            1
        ]
    )(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.rmdir()  # building the model above ran the lambda once
    result = build("--source", path.as_uri(), "--format", "keras")
    assert result.code != 0
    assert "Lambda" in result.summary["error"], result.summary
    assert not marker.exists()
