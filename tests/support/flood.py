"""Open-loop HTTP load against a runtime on 127.0.0.1: requests sent at a fixed rate whatever
the server answers (as a crowd of clients would), each on its own connection, each answer's
status, latency and Retry-After recorded. Bounded by rate x seconds requests and by
`max_outstanding` open at once. Only ever aimed at 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.onnx_models import write_slow_linear_onnx

# The server the overload test and benchmark flood: one worker thread, a small admission limit
# and a short deadline, serving a model that keeps one core busy for milliseconds per row.
MAX_IN_FLIGHT = 8
DEADLINE_MS = 400
SERVER_ARGS = (
    "--execution",
    "thread",
    "--max-in-flight",
    str(MAX_IN_FLIGHT),
    "--deadline-ms",
    str(DEADLINE_MS),
)


def write_slow_model(path: Path) -> Path:
    """y = x @ W for x of shape [rows, 4], made slow (write_slow_linear_onnx, 512 copies)."""
    write_slow_linear_onnx(path, np.arange(12, dtype=np.float32).reshape(4, 3) / 10, copies=512)
    return path


def infer_body(rows: int = 1, width: int = 4) -> bytes:
    data = [float(i % 7) for i in range(rows * width)]
    doc = {"inputs": [{"name": "x", "shape": [rows, width], "datatype": "FP32", "data": data}]}
    return json.dumps(doc).encode()


@dataclass
class FloodResult:
    """Every answer of a flood, by status; failures without an HTTP answer in `errors`."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)
    ok_s: list[float] = field(default_factory=list)  # latency of each 200
    shed_s: list[float] = field(default_factory=list)  # latency of each 503
    retry_after: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: int = 0  # not sent: max_outstanding requests were already open

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    def p99_ok_s(self) -> float:
        return quantile(self.ok_s, 0.99)

    def median_shed_s(self) -> float:
        return statistics.median(self.shed_s) if self.shed_s else float("nan")

    def summary(self) -> str:
        return (
            f"sent {self.sent} (skipped {self.skipped}): {dict(self.statuses)}, "
            f"{len(self.errors)} without an answer; 200 p50 "
            f"{quantile(self.ok_s, 0.5) * 1e3:.1f} ms p99 {self.p99_ok_s() * 1e3:.1f} ms; "
            f"503 median {self.median_shed_s() * 1e3:.2f} ms"
        )


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(host: str, port: int, request: bytes, result: FloodResult) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
        finally:
            writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
        return
    elapsed = time.perf_counter() - started
    result.statuses[status] += 1
    if status == 200:
        result.ok_s.append(elapsed)
    elif status == 503:
        result.shed_s.append(elapsed)
        result.retry_after[headers.get("retry-after", "")] += 1


async def flood(
    host: str,
    port: int,
    model: str,
    body: bytes,
    *,
    rate: float,
    seconds: float,
    max_outstanding: int = 1024,
) -> FloodResult:
    """Send rate x seconds requests, one every 1/rate s, and wait for every answer."""
    request = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    result = FloodResult()
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing of an open-loop load, not a wait on a condition
        if len(tasks) >= max_outstanding:
            result.skipped += 1
            continue
        task = asyncio.create_task(_one(host, port, request, result))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    return result


def capacity(host: str, port: int, model: str, body: bytes, seconds: float) -> float:
    """Requests per second one client gets back to back on one keep-alive connection: the
    server's capacity when the model is the bottleneck."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            conn.request(
                "POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise AssertionError(f"HTTP {response.status} while measuring capacity")
            done += 1
    finally:
        conn.close()
    return done / (time.perf_counter() - started)


def resident_mib(pid: int) -> float:
    """The process' resident memory (VmRSS), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
