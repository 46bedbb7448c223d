"""The Triton path against a real tritonserver (the nvidia-pytriton wheel's CPU build).

What this build can and cannot exercise: it has no onnxruntime backend, so a model rendered
with platform onnxruntime_onnx loads only as far as the backend lookup; that proves Triton
parsed our config.pbtxt. Inference runs through a python-backend model that wraps the same
ONNX file; the readiness checks run against both.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest
import tritonclient.http as httpclient
from modelship_runtime.triton.config import (
    DynamicBatching,
    InstanceGroup,
    TritonModelConfig,
    write_model_repository,
)
from modelship_runtime.triton.readiness import check_readiness, wait_for_readiness

from tests.integration.runtime import triton_server
from tests.integration.runtime.server_process import free_port


class Triton:
    def __init__(self, http_port: int, grpc_port: int, log: Path) -> None:
        self.http = f"127.0.0.1:{http_port}"
        self.grpc = f"127.0.0.1:{grpc_port}"
        self.log = log


@pytest.fixture(scope="module")
def triton(mlp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triton]:
    venv = triton_server.pytriton_venv()
    repository = tmp_path_factory.mktemp("triton-repo")
    rendered = TritonModelConfig(
        name="mlp_onnx",
        max_batch_size=8,
        dynamic_batching=DynamicBatching(max_queue_delay_microseconds=2000),
        instance_group=InstanceGroup(kind="KIND_CPU", count=1),
        intra_op_threads=1,
    )
    write_model_repository(repository, rendered, mlp_path)
    python_model = repository / "mlp_py"
    (python_model / "1").mkdir(parents=True)
    shutil.copyfile(mlp_path, python_model / "1" / "model.onnx")
    (python_model / "1" / "model.py").write_text(triton_server.PYTHON_MODEL)
    (python_model / "config.pbtxt").write_text(
        triton_server.python_backend_config("mlp_py", venv, width=16, classes=4)
    )
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    process = triton_server.start_tritonserver(
        venv,
        repository,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log=log,
    )
    try:
        yield Triton(http_port, grpc_port, log)
    finally:
        process.terminate()
        process.wait(30)


def test_readiness_through_tritonclient_http_and_grpc(triton: Triton) -> None:
    answer = wait_for_readiness(triton.http, "mlp_py", deadline_s=90, interval_s=0.2)
    assert answer.ready, f"{answer.reason}\n{triton.log.read_text()[-3000:]}"
    assert check_readiness(triton.grpc, "mlp_py", protocol="grpc").ready


def test_rendered_onnx_config_is_parsed_and_stops_only_at_the_missing_backend(
    triton: Triton,
) -> None:
    wait_for_readiness(triton.http, "mlp_py", deadline_s=90, interval_s=0.2)
    answer = check_readiness(triton.http, "mlp_onnx")
    assert not answer.ready and "'mlp_onnx'" in answer.reason
    request = urllib.request.Request(
        f"http://{triton.http}/v2/repository/index", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        index = {m["name"]: m for m in orjson.loads(response.read())}
    reason = index["mlp_onnx"]["reason"]
    assert "unable to find backend library for backend 'onnxruntime'" in reason, reason


def test_inference_through_the_python_backend_matches_onnxruntime(
    triton: Triton, mlp_path: Path
) -> None:
    wait_for_readiness(triton.http, "mlp_py", deadline_s=90, interval_s=0.2)
    x = np.random.default_rng(4).standard_normal((3, 16)).astype(np.float32)
    expected = ort.InferenceSession(str(mlp_path)).run(["scores"], {"x": x})[0]
    inp = httpclient.InferInput("x", [3, 16], "FP32")
    inp.set_data_from_numpy(x)
    result = httpclient.InferenceServerClient(triton.http).infer("mlp_py", [inp])
    np.testing.assert_allclose(result.as_numpy("scores"), expected, rtol=1e-5, atol=1e-6)


def test_readiness_of_an_unreachable_server_names_it() -> None:
    answer = check_readiness(f"127.0.0.1:{free_port()}", "m", timeout_s=1.0)
    assert not answer.ready and "unreachable" in answer.reason
