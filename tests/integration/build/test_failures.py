"""Each way a build fails: one line naming the cause, a non-zero exit, nothing partial published."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.build import models
from tests.integration.build.conftest import BUCKET, HttpServer, keys_under, upload
from tests.integration.build.s3server import S3Server, free_port
from tests.support.pickles import RunsCommand


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_FETCH_ATTEMPTS", "2")
    monkeypatch.setenv("MODELSHIP_FETCH_BACKOFF", "0.05")
    monkeypatch.setenv("MODELSHIP_FETCH_TIMEOUT", "1")


def assert_failed_cleanly(result: Any, s3: S3Server, prefix: str, *needles: str) -> None:
    assert result.code != 0
    assert len(result.stderr) == 1, result.stderr
    line = result.stderr[0]
    assert line.startswith("modelship-runtime build: ")
    for needle in needles:
        assert needle in line, line
    assert result.summary == {"ok": False, "error": line.removeprefix("modelship-runtime build: ")}
    leftovers = list(result.output.rglob("*")) if result.output.exists() else []
    assert leftovers == [], leftovers  # no manifest, no model file, no staging directory
    assert keys_under(s3, prefix) == []


Case = Callable[[Path], list[str]]


def _truncated(model: models.TrainedModel, tmp: Path, suffix: str) -> str:
    data = model.path.read_bytes()
    path = tmp / f"truncated{suffix}"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def test_corrupt_onnx(tmp_path: Path, build: Any, s3: S3Server) -> None:
    path, _, _ = models.clustered_mlp(tmp_path, (8, 16, 16, 3))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(path.read_bytes()[:700])
    result = build(
        "--source", str(corrupt), "--format", "onnx", "--publish", f"s3://{BUCKET}/corrupt/"
    )
    assert_failed_cleanly(result, s3, "corrupt/", "not an ONNX model")


def test_corrupt_pickle(
    tmp_path: Path, build: Any, s3: S3Server, logistic: models.TrainedModel
) -> None:
    source = _truncated(logistic, tmp_path, ".joblib")
    result = build(
        "--source", source, "--format", "sklearn", "--allow-unsafe-formats",
        "--publish", f"s3://{BUCKET}/corrupt-pickle/",
    )  # fmt: skip
    assert_failed_cleanly(result, s3, "corrupt-pickle/", "corrupt or truncated")


@pytest.mark.parametrize(
    ("fixture", "fmt", "needle"),
    [
        ("xgb", "onnx", "not an ONNX model"),
        ("xgb", "lightgbm", "not a LightGBM model file"),
        ("lgbm", "xgboost", "not an XGBoost model file"),
        ("lgbm", "sklearn", "not a pickle or joblib file"),
    ],
)
def test_wrong_format(
    fixture: str, fmt: str, needle: str, *, request: pytest.FixtureRequest, build: Any, s3: S3Server
) -> None:
    model: models.TrainedModel = request.getfixturevalue(fixture)
    prefix = f"wrong-{fixture}-{fmt}/"
    result = build(
        "--source", str(model.path), "--format", fmt, "--publish", f"s3://{BUCKET}/{prefix}"
    )  # fmt: skip
    assert_failed_cleanly(result, s3, prefix, needle)


def test_pickle_refused_without_opt_in(
    build: Any, s3: S3Server, forest: models.TrainedModel
) -> None:
    result = build(
        "--source", str(forest.path), "--format", "sklearn", "--publish", f"s3://{BUCKET}/unsafe/"
    )
    assert_failed_cleanly(result, s3, "unsafe/", "pickle", "--allow-unsafe-formats")


def test_a_pickle_that_would_run_a_command_is_refused_even_when_pickles_are_allowed(
    tmp_path: Path, build: Any, s3: S3Server
) -> None:
    marker = tmp_path / "ran"
    source = tmp_path / "model.pkl"
    source.write_bytes(pickle.dumps(RunsCommand(marker)))
    result = build(
        "--source", str(source), "--format", "sklearn", "--allow-unsafe-formats",
        "--publish", f"s3://{BUCKET}/evil/",
    )  # fmt: skip
    assert_failed_cleanly(result, s3, "evil/", "imports posix.system", "refused before loading")
    assert not marker.exists()  # the build process never ran it


def test_sha256_mismatch_file_and_s3(build: Any, s3: S3Server, xgb: models.TrainedModel) -> None:
    wrong = "0" * 64
    result = build("--source", xgb.path.as_uri(), "--format", "xgboost", "--sha256", wrong)
    assert_failed_cleanly(result, s3, "sha/", "sha256 mismatch", f"expected {wrong}")
    source = upload(s3, xgb.path, "sources/sha-xgb.json")
    result = build(
        "--source", source, "--format", "xgboost", "--sha256", wrong, "--publish", f"s3://{BUCKET}/sha/"
    )  # fmt: skip
    assert_failed_cleanly(result, s3, "sha/", "sha256 mismatch", source)


def test_unreachable_uris(
    build: Any,
    s3: S3Server,
    http_server: HttpServer,
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [
        (f"s3://{BUCKET}/sources/missing.onnx", ["not found (HTTP 404)"]),
        ("s3://no-such-bucket-here/model.onnx", ["bucket does not exist"]),
        (f"{http_server.url}/missing.onnx", ["not found (HTTP 404)"]),
        (f"{http_server.url}/forbidden/model.onnx", ["access denied (HTTP 403)"]),
        (f"{http_server.url}/broken/model.onnx", ["server error (HTTP 500)", "after 2 attempts"]),
        (f"http://127.0.0.1:{free_port()}/model.onnx", ["refused", "after 2 attempts"]),
        (
            "http://models.modelship.invalid/model.onnx",
            ["DNS lookup of models.modelship.invalid failed"],
        ),
        (f"{http_server.url}/hang/model.onnx", ["timed out after 1s"]),
        ("/nonexistent/dir/model.onnx", ["no such file"]),
    ]
    for number, (source, needles) in enumerate(cases):
        prefix = f"unreachable-{number}/"
        result = build(
            "--source", source, "--format", "onnx", "--publish", f"s3://{BUCKET}/{prefix}"
        )
        assert_failed_cleanly(result, s3, prefix, source, *needles)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    result = build("--source", f"s3://{BUCKET}/sources/any.onnx", "--format", "onnx")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    assert_failed_cleanly(result, s3, "denied/", "access denied (HTTP 403")


def test_validation_data_of_wrong_shape(
    tmp_path: Path, build: Any, s3: S3Server, logistic: models.TrainedModel
) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((20, 7), np.float32), y=np.zeros(20, np.int64))
    result = build(
        "--source", str(logistic.path), "--format", "sklearn", "--allow-unsafe-formats",
        "--validation-data", str(bad), "--publish", f"s3://{BUCKET}/bad-shape/",
    )  # fmt: skip
    assert_failed_cleanly(result, s3, "bad-shape/", "bad.npz", "shape (20, 7)", "(N, 10)")


def test_retry_recovers_from_a_transient_error(
    build: Any, http_server: HttpServer, xgb: models.TrainedModel, fast_retries: None
) -> None:
    (http_server.root / "xgb-flaky.json").write_bytes(xgb.path.read_bytes())
    result = build("--source", f"{http_server.url}/flaky/xgb-flaky.json", "--format", "xgboost")
    assert result.code == 0, result.stderr
    assert http_server.hits["/flaky/xgb-flaky.json"] == 2
