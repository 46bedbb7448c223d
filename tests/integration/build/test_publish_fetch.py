"""Publishing a build to s3:// and file://; `fetch` brings it (or a single file) back, verified."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from modelship_runtime.build import fetch_cli, publish_cli

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


def test_a_build_published_by_its_own_step_with_the_stores_keys_as_files(
    *,
    tmp_path: Path,
    build: Any,
    s3_server: S3Server,
    lgbm: models.TrainedModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The build (the model's own code) runs without the store's keys; the publish step gets
    # them as the files of a mounted Secret, none in its environment.
    for key in [*s3_server.env(), "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"]:
        monkeypatch.delenv(key, raising=False)
    result = build("--source", str(lgbm.path), "--format", "lightgbm")
    assert result.code == 0, result.stderr
    keys = tmp_path / "store-keys"
    keys.mkdir()
    for key, value in s3_server.env().items():
        (keys / key).write_text(value)
    destination = f"s3://{BUCKET}/builds/lgbm/v1/"

    capsys.readouterr()
    assert publish_cli.main(["--source", str(result.output), "--destination", destination]) == 1
    assert "publish" in capsys.readouterr().err  # no keys at all: refused, one line

    code = publish_cli.main(
        ["--source", str(result.output), "--destination", destination,
         "--credentials-dir", str(keys), "--progress", "none"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = result.manifest()
    assert f"builds/lgbm/v1/{manifest['selectedFile']}" in keys_under(s3_server, "builds/lgbm/v1/")
    code, err = fetch(
        capsys, "--source", destination, "--output", str(tmp_path / "fetched"),
        "--credentials-dir", str(keys),
    )  # fmt: skip
    assert code == 0, err

    # A model file changed after the build is not published.
    (result.output / manifest["selectedFile"]).write_bytes(b"changed")
    code = publish_cli.main(
        ["--source", str(result.output), "--destination", f"s3://{BUCKET}/builds/lgbm/v2/",
         "--credentials-dir", str(keys), "--progress", "none"]
    )  # fmt: skip
    assert code == 1 and "the manifest lists" in capsys.readouterr().err
    assert keys_under(s3_server, "builds/lgbm/v2/") == []


def _published(tmp_path: Path, build: Any, lgbm: models.TrainedModel) -> tuple[Path, Any]:
    """The LightGBM model built and published to a directory: the directory and the build."""
    destination = tmp_path / "published"
    result = build(
        "--source", str(lgbm.path), "--format", "lightgbm", "--publish", destination.as_uri()
    )
    assert result.code == 0, result.stderr
    return destination, result


def test_publish_to_a_directory_and_fetch_it(
    tmp_path: Path, build: Any, lgbm: models.TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    destination, result = _published(tmp_path, build, lgbm)
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


def test_a_pinned_fetch_refuses_a_build_replaced_in_the_store(
    tmp_path: Path, build: Any, lgbm: models.TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    destination, result = _published(tmp_path, build, lgbm)
    manifest = result.manifest()
    recorded = next(v for v in manifest["variants"] if v["selected"])["sha256"]
    # Someone with write access to the store swaps the model and lists its digest: the build is
    # consistent in itself, so only the digest recorded at build time tells.
    swapped = b"not the model that was built"
    (destination / manifest["selectedFile"]).write_bytes(swapped)
    forged = hashlib.sha256(swapped).hexdigest()
    for variant in manifest["variants"]:
        if variant["selected"]:
            variant["sha256"] = forged
    (destination / "manifest.json").write_text(json.dumps(manifest))

    unpinned = tmp_path / "unpinned"
    code, err = fetch(capsys, "--source", str(destination), "--output", str(unpinned))
    assert code == 0, err

    pinned = tmp_path / "pinned"
    code, err = fetch(
        capsys, "--source", str(destination), "--output", str(pinned), "--model-sha256", recorded
    )
    assert code == 1 and len(err) == 1, err
    assert forged in err[0] and recorded in err[0] and "changed after it was built" in err[0]
    assert list(pinned.iterdir()) == []

    code, err = fetch(
        capsys, "--source", str(destination), "--output", str(tmp_path / "ok"),
        "--model-sha256", forged,
    )  # fmt: skip
    assert code == 0, err


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
