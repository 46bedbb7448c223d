"""Fixtures of the build-toolchain integration tests: trained models, MinIO, an HTTP file server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modelship_runtime.build import cli

from tests.integration.build import models
from tests.integration.build.s3server import S3Server, running_minio

BUCKET = "models"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trained")


@pytest.fixture(scope="session")
def logistic(model_dir: Path) -> models.TrainedModel:
    return models.train_logistic(model_dir)


@pytest.fixture(scope="session")
def forest(model_dir: Path) -> models.TrainedModel:
    return models.train_forest_pipeline(model_dir)


@pytest.fixture(scope="session")
def xgb(model_dir: Path) -> models.TrainedModel:
    return models.train_xgboost(model_dir)


@pytest.fixture(scope="session")
def lgbm(model_dir: Path) -> models.TrainedModel:
    return models.train_lightgbm_regressor(model_dir)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    data = tmp_path_factory.mktemp("minio") / "data"
    data.mkdir()
    with running_minio(data) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with the standard AWS_* variables pointing the toolchain at it."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


def upload(server: S3Server, path: Path, key: str) -> str:
    server.client().upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def keys_under(server: S3Server, prefix: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


@dataclass
class BuildResult:
    code: int
    stderr: list[str]
    summary: dict[str, Any]
    output: Path

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.output / "manifest.json").read_text())
        return data


@pytest.fixture
def build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `modelship-runtime build` in-process; fast timing, JSON progress on stdout."""

    def run(*args: str, output: Path | None = None) -> BuildResult:
        out = output or tmp_path / "out"
        summary = tmp_path / "summary.json"
        summary.unlink(missing_ok=True)
        capsys.readouterr()
        code = cli.main(
            [*args, "--output", str(out), "--summary-file", str(summary), "--progress", "json"]
            + ([] if "--timing-seconds" in args else ["--timing-seconds", "0.1"])
        )
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        return BuildResult(code, lines, json.loads(summary.read_text()), out)

    return run


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: dict[str, int]
    release: threading.Event

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path.startswith("/forbidden/"):
            self.send_error(403)
        elif self.path.startswith("/flaky/") and self.hits[self.path] == 1:
            self.send_error(503)  # first attempt fails, the retry succeeds
        elif self.path.startswith("/broken/"):
            self.send_error(500)
        elif self.path.startswith("/hang/"):
            self.release.wait(timeout=30)  # never answers within the client's timeout
        else:
            self.path = self.path.removeprefix("/flaky")
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@dataclass
class HttpServer:
    url: str
    root: Path
    hits: dict[str, int]


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    root = tmp_path_factory.mktemp("http")
    hits: dict[str, int] = {}
    release = threading.Event()
    handler = type(
        "Handler",
        (_Handler,),
        {"hits": hits, "release": release, "__init__": _init_with(root)},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", root, hits)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _init_with(root: Path) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        http.server.SimpleHTTPRequestHandler.__init__(self, *args, directory=str(root), **kwargs)

    return init
