"""Publishing a build to s3:// and file://; `fetch` brings it (or a single file) back, verified."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from modelship_runtime.build import fetch_cli

from tests.integration.build import models
from tests.integration.build.conftest import BUCKET, HttpServer, keys_under
from tests.integration.build.s3server import S3Server


def fetch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = fetch_cli.main([*args, "--progress", "none"])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_publish_to_s3_then_fetch_the_build(
    tmp_path: Path,
    build: Any,
    s3: S3Server,
    xgb: models.TrainedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = build(
        "--source", str(xgb.path), "--format", "xgboost", "--publish", f"s3://{BUCKET}/builds/xgb/v1/"
    )  # fmt: skip
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    published = keys_under(s3, "builds/xgb/v1/")
    assert "builds/xgb/v1/manifest.json" in published
    assert f"builds/xgb/v1/{manifest['selectedFile']}" in published

    target = tmp_path / "fetched"
    code, err = fetch(capsys, "--source", f"s3://{BUCKET}/builds/xgb/v1", "--output", str(target))
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["manifest.json", manifest["selectedFile"]]
    )
    selected = next(v for v in manifest["variants"] if v["selected"])
    digest = hashlib.sha256((target / manifest["selectedFile"]).read_bytes()).hexdigest()
    assert digest == selected["sha256"]

    # A tampered model object is refused and nothing lands in the output.
    s3.client().put_object(
        Bucket=BUCKET, Key=f"builds/xgb/v1/{manifest['selectedFile']}", Body=b"tampered"
    )
    tampered = tmp_path / "tampered"
    code, err = fetch(
        capsys, "--source", f"s3://{BUCKET}/builds/xgb/v1/", "--output", str(tampered)
    )
    assert code == 1 and len(err) == 1 and "sha256 mismatch" in err[0]
    assert list(tampered.iterdir()) == []


def test_publish_to_a_directory_and_fetch_it(
    tmp_path: Path, build: Any, lgbm: models.TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = tmp_path / "published"
    result = build(
        "--source", str(lgbm.path), "--format", "lightgbm", "--publish", destination.as_uri()
    )
    assert result.code == 0, result.stderr
    assert (destination / "manifest.json").read_text() == (
        result.output / "manifest.json"
    ).read_text()
    assert not [p for p in destination.iterdir() if p.name.startswith(".")]
    target = tmp_path / "fetched"
    code, err = fetch(capsys, "--source", str(destination), "--output", str(target))
    assert code == 0, err
    assert (
        json.loads((target / "manifest.json").read_text())["selected"]
        == result.manifest()["selected"]
    )


def test_fetch_single_file_over_http(
    tmp_path: Path,
    http_server: HttpServer,
    xgb: models.TrainedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (http_server.root / "plain.json").write_bytes(xgb.path.read_bytes())
    digest = hashlib.sha256(xgb.path.read_bytes()).hexdigest()
    code, err = fetch(
        capsys,
        "--source",
        f"{http_server.url}/plain.json",
        "--output",
        str(tmp_path),
        "--sha256",
        digest,
    )
    assert code == 0, err
    assert (tmp_path / "plain.json").read_bytes() == xgb.path.read_bytes()
    code, err = fetch(
        capsys, "--source", f"{http_server.url}/absent.onnx", "--output", str(tmp_path / "x")
    )
    assert code == 1 and err == [
        f"modelship-runtime fetch: {http_server.url}/absent.onnx: not found (HTTP 404)"
    ]


def test_the_installed_command_runs_a_build_and_prints_one_line_on_failure(
    tmp_path: Path, xgb: models.TrainedModel
) -> None:
    command = [sys.executable, "-m", "modelship_runtime.cli", "build", "--progress", "json"]
    ok = subprocess.run(
        [*command, "--source", str(xgb.path), "--format", "xgboost",
         "--output", str(tmp_path / "ok"), "--timing-seconds", "0.1"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    events = [json.loads(line)["event"] for line in ok.stdout.splitlines()]
    assert events[0] == "build-started" and events[-1] == "build-finished"
    failed = subprocess.run(
        [*command, "--source", str(xgb.path), "--format", "onnx",
         "--output", str(tmp_path / "bad")],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0
    assert "not an ONNX model" in failed.stderr
