"""Dynamic batching under real concurrency: merged, split back to the right caller, never mixed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.runtime import onnx_models
from tests.integration.runtime.server_process import ServerProcess, served
from tests.integration.runtime.test_feedback import scrape, series

REQUESTS = 96


@pytest.fixture(scope="module")
def batching_server(
    mlp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(
        mlp_path,
        "mlp",
        tmp_path_factory.mktemp("logs"),
        "--max-batch-size",
        "16",
        "--max-delay-ms",
        "20",
        "--execution",
        "thread",  # the other server runs inline; both execution paths are covered
    ) as server:
        yield server


@pytest.fixture(scope="module")
def scale_server(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    path = onnx_models.scale_model(model_dir / "scale.onnx")
    with served(
        path,
        "scale",
        tmp_path_factory.mktemp("logs"),
        "--max-batch-size",
        "32",
        "--max-delay-ms",
        "20",
    ) as server:
        yield server


def _infer_http(
    server: ServerProcess, name: str, x: np.ndarray, out: str, binary: bool
) -> np.ndarray:
    client = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        name, [inp], outputs=[httpclient.InferRequestedOutput(out, binary_data=binary)]
    )
    got: np.ndarray = result.as_numpy(out)
    client.close()
    return got


def _infer_grpc(server: ServerProcess, name: str, x: np.ndarray, out: str) -> np.ndarray:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got: np.ndarray = client.infer(name, [inp]).as_numpy(out)
    client.close()
    return got


def test_concurrent_requests_are_merged_and_split_back(
    batching_server: ServerProcess, mlp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    inputs = [
        rng.standard_normal((int(rng.integers(1, 4)), 16)).astype(np.float32)
        for _ in range(REQUESTS)
    ]
    reference = ort.InferenceSession(str(mlp_path))
    expected = [reference.run(["scores"], {"x": x})[0] for x in inputs]
    before = scrape(batching_server)

    def call(i: int) -> np.ndarray:
        x = inputs[i]
        if i % 3 == 0:
            return _infer_grpc(batching_server, "mlp", x, "scores")
        return _infer_http(batching_server, "mlp", x, "scores", binary=i % 3 == 1)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(call, range(REQUESTS)))
    for i, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert got.shape == want.shape, i
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"request {i}")

    after = scrape(batching_server)
    executions = after[series("modelship_batch_size_count", "mlp")] - before.get(
        series("modelship_batch_size_count", "mlp"), 0.0
    )
    merged = after[series("modelship_batch_size_sum", "mlp")] - before.get(
        series("modelship_batch_size_sum", "mlp"), 0.0
    )
    # batch_size is observed once per request with the size of its batch: if nothing merged,
    # sum == count. With 32 concurrent clients some requests must have shared a batch.
    assert executions == REQUESTS
    assert merged > executions


def test_incompatible_shapes_are_never_merged(scale_server: ServerProcess) -> None:
    rnd = random.Random(9)
    inputs = [
        np.full((rnd.randint(1, 3), rnd.choice([2, 3, 5])), float(i), np.float32)
        for i in range(REQUESTS)
    ]

    def call(i: int) -> np.ndarray:
        return _infer_http(scale_server, "scale", inputs[i], "y", binary=bool(i % 2))

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(call, range(REQUESTS)))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, inputs[i] * 2, err_msg=f"request {i}")
    samples = scrape(scale_server)
    assert (
        samples[
            'modelship_requests_total{model="scale",outcome="server_error",revision="1",variant="model"}'
        ]
        == 0
    )
    assert (
        samples[
            'modelship_requests_total{model="scale",outcome="success",revision="1",variant="model"}'
        ]
        == REQUESTS
    )
