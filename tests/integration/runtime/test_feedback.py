"""Accuracy from delayed labels end to end: predictions, labels, scraped counters, PromQL math."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest
import tritonclient.http as httpclient

from tests.integration.runtime.server_process import ServerProcess, served, start_server


def scrape(server: ServerProcess) -> dict[str, float]:
    """Parse the exposition text into {series: value}, the way Prometheus would store samples."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def post_feedback(server: ServerProcess, body: object, model: str) -> tuple[int, dict[str, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("POST", f"/v2/models/{model}/feedback", body=orjson.dumps(body))
    response = conn.getresponse()
    status, payload = response.status, orjson.loads(response.read())
    conn.close()
    return status, payload


def series(name: str, model: str) -> str:
    return f'{name}{{model="{model}",revision="1",variant="model"}}'


@pytest.fixture(scope="module")
def small_log_server(
    mlp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(
        mlp_path,
        "mlp",
        tmp_path_factory.mktemp("logs"),
        "--feedback-max-entries",
        "50",
        "--feedback-output",
        "label",
    ) as server:
        yield server


def test_classifier_accuracy_from_scraped_counters(
    small_log_server: ServerProcess, mlp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 16)).astype(np.float32)
    truth = ort.InferenceSession(str(mlp_path)).run(["label"], {"x": x})[0]
    client = httpclient.InferenceServerClient(small_log_server.http_url)
    before = scrape(small_log_server)
    for i in range(40):
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(x[i : i + 1])
        client.infer("mlp", [inp], request_id=f"p{i}")
    # Labels: the first 30 agree with the model, the last 10 do not: true accuracy 30 / 40.
    labels = [int(truth[i]) if i < 30 else int(truth[i]) + 1 for i in range(40)]
    status, first = post_feedback(
        small_log_server, [{"id": f"p{i}", "label": labels[i]} for i in range(20)], "mlp"
    )
    assert (status, first["matched"]) == (200, 20)
    for i in range(20, 40):
        status, _ = post_feedback(small_log_server, {"id": f"p{i}", "label": [labels[i]]}, "mlp")
        assert status == 200
    status, unknown = post_feedback(small_log_server, {"id": "never-seen", "label": 1}, "mlp")
    assert (status, unknown["unknown"]) == (200, 1)
    after = scrape(small_log_server)

    def increase(name: str) -> float:  # increase(x[window]) over the test's window
        key = series(name, "mlp")
        return after[key] - before.get(key, 0.0)

    accuracy = increase("modelship_feedback_correct_total") / increase(
        "modelship_feedback_predictions_total"
    )
    assert accuracy == pytest.approx(30 / 40)
    assert increase("modelship_feedback_unknown_ids_total") == 1


def test_memory_is_bounded_and_old_predictions_evicted(small_log_server: ServerProcess) -> None:
    client = httpclient.InferenceServerClient(small_log_server.http_url)
    inp = httpclient.InferInput("x", [1, 16], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 16), np.float32))
    for i in range(120):
        client.infer("mlp", [inp], request_id=f"bulk{i}")
    samples = scrape(small_log_server)
    assert samples[series("modelship_feedback_predictions_held", "mlp")] == 50
    assert samples[series("modelship_feedback_predictions_evicted_total", "mlp")] >= 70
    status, result = post_feedback(small_log_server, {"id": "bulk0", "label": 0}, "mlp")
    assert (status, result["unknown"]) == (200, 1)  # evicted: counted, not fatal
    status, result = post_feedback(small_log_server, {"id": "bulk119", "label": 0}, "mlp")
    assert (status, result["matched"]) == (200, 1)


def test_malformed_feedback_is_400(small_log_server: ServerProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", small_log_server.http_port, timeout=10)
    for body, fragment in [
        (b"{", b"not valid JSON"),
        (b'{"id": "a"}', b"needs both 'id' and 'label'"),
        (b"[]", b"empty list"),
        (b'{"id": 5, "label": 1}', b"'id' must be a non-empty string"),
    ]:
        conn.request("POST", "/v2/models/mlp/feedback", body=body)
        response = conn.getresponse()
        payload = response.read()
        assert response.status == 400 and fragment in payload, payload
    conn.close()


def test_regressor_absolute_error(
    regressor_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = start_server(regressor_path, "reg", tmp_path_factory.mktemp("logs"))
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        x = np.array([[1, 2, 3], [0.5, 0.5, 0], [4, 4, 4]], np.float32)  # predictions 6, 1, 12
        inp = httpclient.InferInput("x", [3, 3], "FP32")
        inp.set_data_from_numpy(x)
        client.infer("reg", [inp], request_id="batch-1")
        status, result = post_feedback(server, {"id": "batch-1", "label": [5, 1, 14.5]}, "reg")
        assert (status, result["matched"]) == (200, 1)
        samples = scrape(server)
        assert samples[series("modelship_feedback_predictions_total", "reg")] == 3
        # mean absolute error = increase(abs_error) / increase(predictions) = (1 + 0 + 2.5) / 3
        mae = samples[series("modelship_feedback_absolute_error_total", "reg")] / 3
        assert mae == pytest.approx(3.5 / 3)
        status, result = post_feedback(server, {"id": "batch-1", "label": [1, 2, 3]}, "reg")
        assert result["unknown"] == 1  # a prediction is labelled once
    finally:
        assert server.stop() == 0, server.log()
