"""Process lifecycle: SIGTERM drains in-flight requests and exits 0; build dirs are served."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from modelship_runtime.server.cli import main

from tests.integration.runtime.server_process import http_status, start_server
from tests.support.waiting import wait_until


def test_sigterm_drops_readiness_drains_in_flight_and_exits_zero(
    mlp_path: Path, tmp_path: Path
) -> None:
    server = start_server(mlp_path, "mlp", tmp_path, "--drain-delay-s", "3")
    body = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}]}
    )
    head = (
        f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=20)
    try:
        # The request is in flight: headers and half the body sent, the rest held back.
        sock.sendall(head + body[: len(body) // 2])
        server.terminate()
        wait_until(
            lambda: http_status(f"{server.base}/v2/health/ready") == 503,
            timeout=10,
            interval=0.05,
            what="readiness to turn false after SIGTERM",
        )
        assert http_status(f"{server.base}/v2/health/live") == 200
        sock.sendall(body[len(body) // 2 :])
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    finally:
        sock.close()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b'"scores"' in response
    assert server.process.wait(30) == 0, server.log()


def test_serves_the_selected_variant_of_a_build_directory(mlp_path: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(mlp_path, build / "model.fp32.onnx")
    (build / "model.int8.onnx").write_bytes(b"not a model: must not be picked")
    digest = hashlib.sha256((build / "model.fp32.onnx").read_bytes()).hexdigest()
    manifest = {
        "selected": "fp32",
        "variants": [
            {"name": "int8", "file": "model.int8.onnx", "sha256": "0" * 64},
            {"name": "fp32", "file": "model.fp32.onnx", "sha256": digest},
        ],
    }
    (build / "manifest.json").write_text(json.dumps(manifest))
    server = start_server(build, "built", tmp_path)
    try:
        assert http_status(f"{server.base}/v2/models/built/ready") == 200
    finally:
        assert server.stop() == 0, server.log()


def test_serves_what_modelship_runtime_build_wrote(mlp_path: Path, tmp_path: Path) -> None:
    """The contract with the build toolchain: its output directory is servable as is."""
    output = tmp_path / "built"
    build = subprocess.run(
        [sys.executable, "-m", "modelship_runtime.cli", "build", "--source", mlp_path.as_uri(),
         "--format", "onnx", "--output", str(output), "--quantization", "none"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    server = start_server(output, "built", tmp_path)
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(np.ones((1, 16), np.float32))
        assert client.infer("built", [inp]).as_numpy("scores").shape == (1, 4)
    finally:
        assert server.stop() == 0, server.log()


def test_unloadable_model_exits_non_zero_naming_the_cause(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"garbage")
    server = start_server(bad, "broken", tmp_path, wait=False)
    code = server.process.wait(60)
    assert code != 0
    assert "cannot serve the model" in server.log() and "broken.onnx" in server.log()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--name", "bad name!"], "model_name"), (["--max-batch-size", "-3"], "max_batch_size")],
)
def test_invalid_flags_exit_2_naming_the_flag(
    mlp_path: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", str(mlp_path), "--name", "ok"]
    assert main(base + args) == 2
    assert fragment in capsys.readouterr().err
