"""The runtime flooded at three times its capacity on 127.0.0.1: it sheds the excess at once
with 503 + Retry-After, the requests it admits keep their deadline, its memory stays bounded,
and it serves at full speed right after. Bounded: 15 s of flood per front end."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import socket
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from tests.integration.runtime.server_process import ServerProcess, served
from tests.support.flood import (
    DEADLINE_MS,
    MAX_IN_FLIGHT,
    SERVER_ARGS,
    capacity,
    flood,
    infer_body,
    resident_mib,
    write_slow_model,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FLOOD_SECONDS = 15


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A model that keeps one core busy for milliseconds per row, run on one worker thread."""
    path = write_slow_model(tmp_path_factory.mktemp("models") / "slow.onnx")
    with served(path, "slow", tmp_path_factory.mktemp("logs"), *SERVER_ARGS) as server:
        yield server


def test_a_flood_at_three_times_capacity_is_shed_fast_and_harms_nobody_admitted(
    slow_server: ServerProcess,
) -> None:
    body = infer_body()
    host, port = "127.0.0.1", slow_server.http_port
    before = capacity(host, port, "slow", body, seconds=3)
    rss_before = resident_mib(slow_server.process.pid)
    result = asyncio.run(flood(host, port, "slow", body, rate=3 * before, seconds=FLOOD_SECONDS))
    rss_after = resident_mib(slow_server.process.pid)
    after = capacity(host, port, "slow", body, seconds=3)
    print(
        f"capacity {before:.0f}/s, flood {3 * before:.0f}/s for {FLOOD_SECONDS}s: "
        f"{result.summary()}; RSS {rss_before:.0f} -> {rss_after:.0f} MiB; "
        f"capacity after {after:.0f}/s"
    )
    assert result.errors == [] and result.skipped == 0, result.errors[:5]
    assert set(result.statuses) <= {200, 503}, result.statuses
    assert result.statuses[503] > 0 and result.statuses[200] > 0, result.statuses
    # Admitted requests start within the deadline; one model run may follow it.
    run_s = 1 / before
    assert result.p99_ok_s() <= DEADLINE_MS / 1000 + 2 * run_s, result.summary()
    assert result.median_shed_s() < 0.010, result.summary()
    assert set(result.retry_after) == {"1"}, result.retry_after
    assert rss_after - rss_before < 64, (rss_before, rss_after)
    assert after >= 0.8 * before, (before, after)
    assert slow_server.alive()
    metrics = _metrics(slow_server)
    assert 'modelship_requests_shed_total{model="slow"' in metrics
    assert "modelship_queue_depth{" in metrics


def _metrics(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.base}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_a_client_deadline_shorter_than_the_queue_is_refused_without_running(
    slow_server: ServerProcess,
) -> None:
    body = infer_body()
    # Keep the worker busy, then ask for an answer within 1 ms: it cannot start in time.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        busy = [
            pool.submit(capacity, "127.0.0.1", slow_server.http_port, "slow", body, 1.0)
            for _ in range(3)
        ]
        conn = http.client.HTTPConnection("127.0.0.1", slow_server.http_port, timeout=10)
        statuses = []
        for _ in range(5):
            conn.request(
                "POST",
                "/v2/models/slow/infer",
                body,
                {"Content-Type": "application/json", "x-modelship-deadline-ms": "1"},
            )
            response = conn.getresponse()
            text = response.read().decode()
            statuses.append(response.status)
            if response.status == 503:
                assert "deadline" in text and response.getheader("retry-after") == "1", text
        conn.close()
        for future in busy:
            future.result()
    assert 503 in statuses, statuses


def test_over_grpc_refusals_are_unavailable(slow_server: ServerProcess) -> None:
    x = np.ones((1, 4), np.float32)

    def call(deadline: float) -> str:
        client = grpcclient.InferenceServerClient(slow_server.grpc_url)
        outcomes = []
        try:
            while time.monotonic() < deadline:
                tensor = grpcclient.InferInput("x", [1, 4], "FP32")
                tensor.set_data_from_numpy(x)
                try:
                    client.infer("slow", [tensor])
                    outcomes.append("OK")
                except InferenceServerException as exc:
                    outcomes.append(str(exc.status()))
        finally:
            client.close()
        return ",".join(outcomes)

    # Closed loop: 4 x MAX_IN_FLIGHT clients, each sending back to back for 5 s.
    deadline = time.monotonic() + 5
    with concurrent.futures.ThreadPoolExecutor(4 * MAX_IN_FLIGHT) as pool:
        answers = ",".join(pool.map(call, [deadline] * (4 * MAX_IN_FLIGHT))).split(",")
    kinds = {a for a in answers if a}
    print({k: answers.count(k) for k in kinds})
    assert "OK" in kinds and "StatusCode.UNAVAILABLE" in kinds, kinds
    assert kinds <= {"OK", "StatusCode.UNAVAILABLE"}, kinds
    assert slow_server.alive()


@pytest.fixture(
    scope="module",
    params=[(), ("--max-batch-size", "8", "--max-delay-ms", "2")],
    ids=["worker-thread", "batching"],
)
def patient_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The slow model on one worker thread with the default 30 s deadline: whatever queues
    behind a busy worker would run, unless something stops it."""
    path = write_slow_model(tmp_path_factory.mktemp("models") / "slow.onnx")
    logs = tmp_path_factory.mktemp("logs")
    with served(path, "slow", logs, "--execution", "thread", *request.param) as server:
        yield server


def _infer_once(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v2/models/slow/infer", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _sample(server: ServerProcess, name: str) -> float:
    """The value of one unlabelled-by-us series of the server's own metrics."""
    for family in text_string_to_metric_families(_metrics(server)):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def test_a_client_that_leaves_while_queued_costs_no_model_run(
    patient_server: ServerProcess,
) -> None:
    server, port = patient_server, patient_server.http_port
    runs_before = _sample(server, "modelship_model_runs_total")
    leaving = 5
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # 32 rows keep the one worker busy for about a second.
        busy = pool.submit(_infer_once, port, infer_body(rows=32))
        wait_until(
            lambda: _sample(server, "modelship_requests_in_flight") >= 1,
            timeout=10,
            interval=0.005,
            what="the busy request to be admitted",
        )
        for queued in range(leaving):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                body = infer_body()
                client.sendall(
                    b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                # Leave only once the server holds the whole request, queued behind the busy one
                # (in flight, or already counted as abandoned).
                wait_until(
                    lambda n=queued: (
                        _sample(server, "modelship_requests_in_flight")
                        + _sample(server, "modelship_requests_abandoned_total")
                        >= n + 2
                    ),
                    timeout=10,
                    interval=0.005,
                    what=f"queued request {queued + 1} to be admitted",
                )
        assert busy.result(timeout=30) == 200
    wait_until(
        lambda: _sample(server, "modelship_requests_in_flight") == 0,
        timeout=30,
        what="every request to be over",
    )
    # Only the busy request ran: none of those whose client left reached the model.
    assert _sample(server, "modelship_model_runs_total") - runs_before == 1
    assert _sample(server, "modelship_requests_abandoned_total") == leaving
    assert server.alive()
