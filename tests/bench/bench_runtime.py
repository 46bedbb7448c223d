"""Benchmark of the serving runtime: raw ORT, HTTP floors (uvicorn, granian), modelship, and peer
servers.

Per the team's BENCHMARKS.md: the server under test is pinned to core 0 with one intra-op
thread, the load generator to core 1; contestants are measured in ONE run with their order
rotated between rounds; closed loop at concurrency 1, 8 and 64, the median of the rounds;
then an open-loop run at 50% and 80% of each contestant's best closed-loop rate for p99.

    make bench-runtime                                  # full run (peers need their venvs)
    .venv/bin/python tests/bench/bench_runtime.py --help

Peers (KServe, MLServer, PyTriton) run from their own venvs under $MODELSHIP_CACHE/venvs,
created here with uv when missing. A peer that cannot be installed or started is reported as
such, never silently dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil
import uvloop

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.runtime.server_process import serve_argv  # noqa: E402

# onnx and onnxruntime are imported where used: the load generator re-executes this file and
# must start in a fraction of a second.

CACHE = Path(os.environ.get("MODELSHIP_CACHE", Path.home() / ".cache" / "modelship"))
BENCH_DIR = CACHE / "bench-runtime"
VENVS = CACHE / "venvs"
SERVER_CORE = "0"
LOAD_CORE = "1"
MAX_BATCH = 64
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench-runtime:begin -->", "<!-- bench-runtime:end -->"

MODELS = {
    "tiny": (16, 64, 64, 4),
    "mlp": (784, 1024, 1024, 10),
}


# --------------------------------------------------------------------------------------------
# Models


def build_models(quantize: bool) -> dict[str, Path]:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    from tests.integration.runtime import onnx_models  # noqa: PLC0415

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, sizes in MODELS.items():
        path = BENCH_DIR / f"{name}-fp32.onnx"
        if not path.exists():
            onnx_models.mlp_model(path, sizes)
        paths[f"{name}-fp32"] = path
    if quantize:
        int8 = BENCH_DIR / "mlp-int8.onnx"
        if not int8.exists():
            quantize_dynamic(str(paths["mlp-fp32"]), str(int8), weight_type=QuantType.QInt8)
        paths["mlp-int8"] = int8
    return paths


def width(model_key: str) -> int:
    return MODELS[model_key.split("-", maxsplit=1)[0]][0]


def sample_input(model_key: str, rows: int = 1, seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    # Three decimals: realistic feature values without 17-digit JSON numbers.
    return np.round(rng.random((rows, width(model_key))), 3).astype(np.float32)


# --------------------------------------------------------------------------------------------
# (a) raw ONNX Runtime in-process


def run_inprocess(model: Path, batch: int, seconds: float) -> dict[str, float]:
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    x = np.random.default_rng(0).random((batch, session.get_inputs()[0].shape[1]), np.float32)
    for _ in range(50):
        session.run(None, {"x": x})
    latencies: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        t0 = time.perf_counter()
        session.run(None, {"x": x})
        now = time.perf_counter()
        latencies.append(now - t0)
    elapsed = now - start
    cpu = time.process_time() - cpu0
    lat = np.array(latencies)
    return {
        "rps": len(latencies) * batch / elapsed,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "cpu_ms_per_req": cpu / (len(latencies) * batch) * 1e3,
        "errors": 0,
    }


# --------------------------------------------------------------------------------------------
# The load generator: raw HTTP/1.1 keep-alive connections on asyncio (uvloop), or gRPC
# (grpc.aio, request bytes serialized once), one core; one connection per concurrent client.

GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def _try_complete(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[: end + 2]).lower()
        status = int(head[9:12])
        index = head.find(b"content-length:")
        length = int(head[index + 15 : head.find(b"\r\n", index)]) if index >= 0 else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        self.waiter.set_result((status, body))

    async def request(self, payload: bytes) -> int:
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        assert self.transport is not None
        self.transport.write(payload)
        status, _ = await self.waiter
        return status

    async def close(self) -> None:
        if self.transport:
            self.transport.close()


class _GrpcConnection:
    """One channel; ModelInfer with the request already serialized, the answer left as bytes,
    so the client's own Python per call is as small as grpc.aio allows."""

    def __init__(self, port: int) -> None:
        import grpc  # noqa: PLC0415

        self._grpc = grpc
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.unary_unary(GRPC_INFER)
        self.closed = False

    async def request(self, payload: bytes) -> int:
        try:
            await self.call(payload)
        except self._grpc.aio.AioRpcError:
            return 500
        return 200

    async def close(self) -> None:
        self.closed = True
        await self.channel.close()


async def _connect(port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
    sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return protocol


async def _connect_grpc(port: int) -> _GrpcConnection:
    conn = _GrpcConnection(port)
    await conn.channel.channel_ready()
    return conn


class Client(Protocol):
    """One load-generator connection: sends a request, answers its status (200 when fine)."""

    closed: bool

    async def request(self, payload: bytes) -> int: ...

    async def close(self) -> None: ...


Connect = Callable[[int], Awaitable[Client]]


def http_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def closed_loop(
    connect: Connect, port: int, payload: bytes, *, concurrency: int, warmup: float, seconds: float
) -> dict[str, Any]:
    connections = [await connect(port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + warmup + seconds

    async def worker(conn: Client) -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            status = await conn.request(payload)
            t1 = time.perf_counter()
            if measuring:
                latencies.append(t1 - t0)
                if status != 200:
                    errors += 1

    async def flip() -> float:
        nonlocal measuring
        await asyncio.sleep(warmup)
        measuring = True
        return time.perf_counter()

    flip_task = asyncio.ensure_future(flip())
    await asyncio.gather(*(worker(c) for c in connections))
    started = flip_task.result()
    elapsed = time.perf_counter() - started
    for c in connections:
        await c.close()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "count": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "errors": errors,
    }


async def open_loop(
    connect: Connect, port: int, payload: bytes, rate: float, seconds: float
) -> dict[str, Any]:
    """Poisson arrivals at `rate`; latency runs from the scheduled time (no omission)."""
    pool: list[Client] = []
    latencies: list[float] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []
    rnd = random.Random(0)

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = pool.pop() if pool else await connect(port)
        status = await conn.request(payload)
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            errors += 1
        if not conn.closed:
            pool.append(conn)

    start = time.perf_counter()
    next_at = start
    while next_at < start + seconds:
        now = time.perf_counter()
        if next_at > now:
            await asyncio.sleep(next_at - now)
        tasks.append(asyncio.ensure_future(one(next_at)))
        next_at += rnd.expovariate(rate)
    await asyncio.gather(*tasks)
    for c in pool:
        await c.close()
    lat = np.array(latencies)
    return {
        "count": len(latencies),
        "rps": len(latencies) / (time.perf_counter() - start),
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "errors": errors,
    }


def loadgen_main(spec: dict[str, Any]) -> dict[str, Any]:
    payload = Path(spec["payload"]).read_bytes()
    grpc = spec.get("transport") == "grpc"
    connect: Connect = _connect_grpc if grpc else _connect
    if spec["mode"] == "closed":
        work = closed_loop(
            connect,
            spec["port"],
            payload,
            concurrency=spec["concurrency"],
            warmup=spec["warmup"],
            seconds=spec["seconds"],
        )
    else:
        work = open_loop(connect, spec["port"], payload, spec["rate"], spec["seconds"])
    # grpc.aio keeps to asyncio's own loop; HTTP runs on uvloop as before.
    return asyncio.run(work) if grpc else uvloop.run(work)


def run_pinned(args: list[str], timeout: float) -> dict[str, Any]:
    """Run this script in a subprocess pinned to the load core; it prints one JSON line."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, __file__, *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Contestants that are servers


@dataclass
class Server:
    name: str
    group: str  # a' | f | b | c
    port: int
    path: str
    body: str  # "json" | "binary" (HTTP on `port`) | "grpc" (`port` is the gRPC port)
    process: subprocess.Popen[bytes] | None = None
    note: str = ""
    log: Path | None = None

    def cpu_seconds(self) -> float:

        if self.process is None:
            return 0.0
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def payload_for(model_key: str, body: str, path: str) -> bytes:
    x = sample_input(model_key)
    if body == "grpc":
        return grpc_request(x).SerializeToString()
    if body == "json":
        doc = {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.reshape(-1).tolist(),
                }
            ]
        }
        raw = json.dumps(doc).encode()
        return http_request(0, path, raw, {"Content-Type": "application/json"})
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [
                {"name": "scores", "parameters": {"binary_data": True}},
                {"name": "label", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()
    return http_request(
        0,
        path,
        header + x.tobytes(),
        {
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )


def grpc_request(x: np.ndarray[Any, Any]) -> Any:
    """ModelInfer for model "m" with the tensor as raw bytes (what tritonclient.grpc sends)."""
    from tritonclient.grpc import service_pb2  # noqa: PLC0415

    request = service_pb2.ModelInferRequest(model_name="m")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "x", "FP32"
    tensor.shape.extend(x.shape)
    request.raw_input_contents.append(x.tobytes())
    return request


READY_POLL_SECONDS = 0.2


def wait_http_ready(
    port: int, path: str, process: subprocess.Popen[bytes], deadline: float
) -> None:
    """Polls a readiness URL until it answers 200 or the deadline passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(READY_POLL_SECONDS)
    raise RuntimeError(f"not ready within {deadline:.0f}s")


def start_process(
    server: Server, argv: list[str], env: dict[str, str], ready_path: str, deadline: float = 120
) -> Server:
    log = BENCH_DIR / f"{server.name.replace(' ', '_').replace('/', '_')}.log"
    server.log = log
    with log.open("wb") as out:
        server.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        wait_http_ready(server.port, ready_path, server.process, deadline)
    except RuntimeError as exc:
        server.note = f"did not start: {exc}; see {log}"
        stop(server)
    return server


def stop(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    # Children (PyTriton's tritonserver and stub) may outlive their parent: end the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)


# The floors' shared part: one ORT session on one thread, as every contestant has, and the
# V2 JSON answer to a request body.
FLOOR_SESSION = """
import os
import numpy as np
import onnxruntime as ort
import orjson

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["BENCH_MODEL"], options)
names = [o.name for o in session.get_outputs()]
kinds = {"float32": "FP32", "int64": "INT64"}


def answer(body):
    request = orjson.loads(body)
    tensor = request["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    outputs = session.run(None, {"x": x})
    doc = {"model_name": "m", "outputs": [
        {"name": n, "datatype": kinds[str(o.dtype)], "shape": list(o.shape), "data": o.reshape(-1)}
        for n, o in zip(names, outputs)]}
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
"""

ASGI_FLOOR = (
    '''
"""(a') The HTTP floor: a bare ASGI + orjson V2 endpoint calling ORT inline."""
'''
    + FLOOR_SESSION
    + """


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = answer(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
"""
)

RSGI_FLOOR = (
    '''
"""(f) The same floor for granian's own interface (RSGI): no ASGI message dicts; the body is
read in one await and the response written in one call."""
'''
    + FLOOR_SESSION
    + """JSON = [("content-type", "application/json")]


async def app(scope, protocol):
    if scope.method == "GET":
        protocol.response_empty(200, [])
        return
    protocol.response_bytes(200, JSON, answer(await protocol()))
"""
)

PROTOCOL_FLOOR = (
    '''
"""(f) The floor without a server framework: an asyncio Protocol parsing HTTP/1.1 with
httptools (the C parser uvicorn uses) and answering from its parser callback, no ASGI and no
task per request. Keep-alive only, no limits or timeouts: a ceiling for a Python front end,
not a server to run."""
import asyncio
import sys

import httptools
import uvloop
'''
    + FLOOR_SESSION
    + """
HEAD = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n"


class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.chunks = []

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_body(self, chunk):
        self.chunks.append(chunk)

    def on_message_complete(self):
        body, self.chunks = b"".join(self.chunks), []
        payload = b"" if self.parser.get_method() == b"GET" else answer(body)
        self.transport.write(HEAD % len(payload) + payload)


async def main():
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


uvloop.run(main())
"""
)

MODELSHIP_ON_GRANIAN = '''
"""(f) modelship's own REST app and data plane (what `modelship-runtime serve` runs, batching
off, one intra-op thread) under granian's ASGI instead of uvicorn: what the runtime would gain
from the front end alone."""
import os
from pathlib import Path

from modelship_runtime.server.dataplane import DataPlane
from modelship_runtime.server.heap import settle_after_load
from modelship_runtime.server.lifecycle import load_model
from modelship_runtime.server.metrics import RuntimeMetrics
from modelship_runtime.server.rest import RestApp, RestCore
from modelship_runtime.server.settings import ServerSettings

settings = ServerSettings(
    model_path=Path(os.environ["BENCH_MODEL"]), model_name="m", threads=1, grpc_port=None,
    feedback_max_entries=0,
)
dataplane = DataPlane(settings, RuntimeMetrics("m", settings.model_version), None)
dataplane.attach(load_model(settings))
settle_after_load()
app = RestApp(RestCore(dataplane, settings.max_body_bytes))
'''

KSERVE_SERVER = '''
"""(c) KServe's Python model server wrapping the same ORT session."""
import os
import sys

sys.argv = sys.argv[:1]
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

KINDS = {"float32": "FP32", "int64": "INT64"}


class OrtModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options)
        self.names = [o.name for o in self.session.get_outputs()]
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None):
        x = payload.inputs[0].as_numpy()
        outputs = []
        for name, array in zip(self.names, self.session.run(None, {"x": x})):
            out = InferOutput(name=name, shape=list(array.shape), datatype=KINDS[str(array.dtype)])
            out.set_data_from_numpy(array, binary_data=False)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or "", model_name=self.name, infer_outputs=outputs
        )


if __name__ == "__main__":
    model = OrtModel("m", os.environ["BENCH_MODEL"])
    ModelServer(http_port=int(os.environ["BENCH_PORT"]),
                grpc_port=int(os.environ["BENCH_GRPC_PORT"]),
                enable_grpc=True, workers=1).start([model])
'''

MLSERVER_RUNTIME = '''
"""(c) MLServer custom runtime wrapping the same ORT session."""
import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OrtModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.environ["BENCH_MODEL"], options)
        self.names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        outputs = self.session.run(None, {"x": x})
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(n, a) for n, a in zip(self.names, outputs)],
        )
'''

PYTRITON_SERVER = '''
"""(c) PyTriton: tritonserver + python proxy, dynamic batching, the same ORT session."""
import os

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["BENCH_MODEL"], options)
width = session.get_inputs()[0].shape[1]
classes = session.get_outputs()[0].shape[1]


@batch
def infer(x):
    scores, label = session.run(None, {"x": x})
    return {"scores": scores, "label": label.reshape(-1, 1)}


config = TritonConfig(http_port=int(os.environ["BENCH_PORT"]),
                      grpc_port=int(os.environ["BENCH_GRPC_PORT"]),
                      metrics_port=int(os.environ["BENCH_METRICS_PORT"]))
with Triton(config=config) as triton:
    triton.bind(
        model_name="m",
        infer_func=infer,
        inputs=[Tensor(name="x", dtype=np.float32, shape=(width,))],
        outputs=[Tensor(name="scores", dtype=np.float32, shape=(classes,)),
                 Tensor(name="label", dtype=np.int64, shape=(1,))],
        config=ModelConfig(
            max_batch_size=64, batcher=DynamicBatcher(max_queue_delay_microseconds=1000)
        ),
        strict=False,
    )
    triton.serve()
'''

PEERS = {
    "kserve": ("kserve", ["kserve", "onnxruntime", "numpy"], None),
    "mlserver": ("mlserver", ["mlserver", "onnxruntime", "numpy"], None),
    "pytriton": (
        "pytriton-0.7.0",
        ["nvidia-pytriton==0.7.0", "onnxruntime", "numpy"],
        "/usr/bin/python3.11",
    ),
}


def peer_python(peer: str) -> tuple[Path | None, str]:
    venv_name, packages, python = PEERS[peer]
    venv = VENVS / venv_name
    python_bin = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists() or (python_bin.exists() and peer != "pytriton"):
        return python_bin, ""
    uv = Path(sys.executable).parent / "uv"
    try:
        subprocess.run(
            [
                str(uv),
                "venv",
                "--allow-existing",
                *(["--python", python] if python else []),
                str(venv),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(
            [str(uv), "pip", "install", "--python", str(python_bin), *packages],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", b"") or b""
        return None, f"install failed: {err.decode(errors='replace').strip().splitlines()[-1:]}"
    marker.write_text("ok\n")
    return python_bin, ""


def modelship_argv(model: Path, port: int, grpc_port: int, *, batching: bool) -> list[str]:
    """(b) modelship serving `model` as "m" on HTTP and gRPC, one intra-op thread, no feedback
    store; with dynamic batching up to MAX_BATCH rows and 1 ms of delay when asked."""
    flags = ["--max-batch-size", str(MAX_BATCH), "--max-delay-ms", "1"] if batching else []
    return serve_argv(model, "m", port, grpc_port, "--feedback-max-entries", "0", *flags)


def sharing(server: Server, suffix: str, body: str, port: int) -> Server:
    """Another contestant served by the same process: its binary form or its gRPC port."""
    return Server(
        server.name + suffix,
        server.group,
        port,
        server.path,
        body,
        server.process,
        server.note,
        server.log,
    )


def start_servers(model_key: str, model: Path, peers: list[str], work: Path) -> list[Server]:
    """Every server contestant, started; if starting one raises (a peer's venv cannot be made,
    say), the ones already running are stopped before the error goes up."""
    servers: list[Server] = []
    try:
        return _start_servers(servers, model_key, model, peers, work)
    except BaseException:
        for server in servers:
            stop(server)
        raise


def _start_servers(
    servers: list[Server], model_key: str, model: Path, peers: list[str], work: Path
) -> list[Server]:
    env_model = {"BENCH_MODEL": str(model)}
    # (a') the floor
    floor = work / "asgi_floor.py"
    floor.write_text(ASGI_FLOOR)
    port = free_port()
    servers.append(
        start_process(
            Server("a' ASGI floor", "a'", port, "/v2/models/m/infer", "json"),
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(work),
                "asgi_floor:app",
                "--port",
                str(port),
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env_model,
            "/v2/health/ready",
        )
    )
    # (f) HTTP front-end candidates (issue 16): the floor's app under granian (Rust HTTP/1.1,
    # one worker process, one Rust runtime thread, uvloop), through ASGI and through granian's
    # own RSGI, side by side with the uvicorn floor above.
    (work / "rsgi_floor.py").write_text(RSGI_FLOOR)
    (work / "modelship_on_granian.py").write_text(MODELSHIP_ON_GRANIAN)
    for name, interface, module in (
        ("f granian ASGI floor", "asgi", "asgi_floor"),
        ("f granian RSGI floor", "rsgi", "rsgi_floor"),
        ("f modelship on granian", "asgi", "modelship_on_granian"),
    ):
        port = free_port()
        servers.append(
            start_process(
                Server(name, "f", port, "/v2/models/m/infer", "json"),
                [
                    sys.executable,
                    "-m",
                    "granian",
                    "--interface",
                    interface,
                    "--working-dir",
                    str(work),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--runtime-threads",
                    "1",
                    "--loop",
                    "uvloop",
                    "--no-ws",
                    "--log-level",
                    "warning",
                    f"{module}:app",
                ],
                env_model,
                "/v2/health/ready",
            )
        )
    (work / "protocol_floor.py").write_text(PROTOCOL_FLOOR)
    port = free_port()
    servers.append(
        start_process(
            Server("f httptools protocol floor", "f", port, "/v2/models/m/infer", "json"),
            [sys.executable, str(work / "protocol_floor.py"), str(port)],
            env_model,
            "/v2/health/ready",
        )
    )
    # modelship's routes and data plane under uvicorn (ASGI), its front end before issue 16
    port = free_port()
    servers.append(
        start_process(
            Server("f modelship on uvicorn", "f", port, "/v2/models/m/infer", "json"),
            [*modelship_argv(model, port, -1, batching=False), "--http-server", "uvicorn"],
            {},
            "/v2/health/ready",
        )
    )
    # (b) modelship, batching off and on; JSON, binary and gRPC to the same process
    for batching in (False, True):
        port, grpc_port = free_port(), free_port()
        base = Server(
            f"b modelship{' +batch' if batching else ''}", "b", port, "/v2/models/m/infer", "json"
        )
        argv = modelship_argv(model, port, grpc_port, batching=batching)
        start_process(base, argv, {}, "/v2/health/ready")
        servers += [base, sharing(base, " bin", "binary", port)]
        servers.append(sharing(base, " grpc", "grpc", grpc_port))
    # (c) peers
    for peer in peers:
        python_bin, note = peer_python(peer)
        port = free_port()
        server = Server(f"c {peer}", "c", port, "/v2/models/m/infer", "json", note=note)
        if python_bin is None:
            servers.append(server)
            continue
        ports = {
            "BENCH_PORT": str(port),
            "BENCH_GRPC_PORT": str(free_port()),
            "BENCH_METRICS_PORT": str(free_port()),
        }
        if peer == "kserve":
            script = work / "kserve_server.py"
            script.write_text(KSERVE_SERVER)
            start_process(
                server, [str(python_bin), str(script)], {**env_model, **ports}, "/v2/health/ready"
            )
        elif peer == "mlserver":
            mdir = work / "mlserver"
            (mdir / "m").mkdir(parents=True, exist_ok=True)
            (mdir / "ort_runtime.py").write_text(MLSERVER_RUNTIME)
            (mdir / "settings.json").write_text(
                json.dumps(
                    {
                        "http_port": port,
                        "grpc_port": int(ports["BENCH_GRPC_PORT"]),
                        "metrics_port": int(ports["BENCH_METRICS_PORT"]),
                        "parallel_workers": 0,
                        "debug": False,
                        "metrics_endpoint": None,
                    }
                )
            )
            (mdir / "m" / "model-settings.json").write_text(
                json.dumps({"name": "m", "implementation": "ort_runtime.OrtModel"})
            )
            start_process(
                server,
                [str(python_bin.parent / "mlserver"), "start", str(mdir)],
                {**env_model, "PYTHONPATH": str(mdir)},
                "/v2/health/ready",
            )
        elif peer == "pytriton":
            script = work / "pytriton_server.py"
            script.write_text(PYTRITON_SERVER)
            start_process(
                server, [str(python_bin), str(script)], {**env_model, **ports}, "/v2/models/m/ready"
            )
        servers += [server, sharing(server, " grpc", "grpc", int(ports["BENCH_GRPC_PORT"]))]
    return servers


def check_outputs(server: Server, model_key: str, model: Path) -> str:
    """One request outside the timed runs: outputs must equal raw ORT's within 1e-5. A
    contestant that cannot answer it gets "failed: ..." and is not measured."""
    import onnxruntime as ort  # noqa: PLC0415

    x = sample_input(model_key)
    expected = ort.InferenceSession(str(model)).run(["scores"], {"x": x})[0].reshape(-1)
    try:
        got = _grpc_scores(server, x) if server.body == "grpc" else _http_scores(server, model_key)
    except Exception as exc:  # reported in the table's notes, never hidden
        return f"failed: {type(exc).__name__}: {str(exc)[:300]}"
    if got is None:
        return "no scores output"
    if np.allclose(got.reshape(-1), expected, atol=1e-5, rtol=1e-5):
        return "ok"
    worst = np.max(np.abs(got.reshape(-1) - expected))
    return f"MISMATCH max abs diff {worst:.2e}"


def _http_scores(server: Server, model_key: str) -> np.ndarray[Any, Any] | None:
    raw = payload_for(model_key, server.body, server.path)
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    headers.pop("Content-Length", None)
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{server.path}", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = response.read()
        json_len = response.headers.get("Inference-Header-Content-Length")
    doc = json.loads(payload[: int(json_len)] if json_len else payload)
    offset = int(json_len) if json_len else 0
    for output in doc["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if output["name"] == "scores":
            if size is not None:
                return np.frombuffer(payload[offset : offset + size], np.float32)
            return np.asarray(output["data"], np.float32)
        if size is not None:
            offset += size
    return None


def _grpc_scores(server: Server, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    import grpc  # noqa: PLC0415
    from tritonclient.grpc import service_pb2  # noqa: PLC0415

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        infer = channel.unary_unary(
            GRPC_INFER,
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        response = infer(grpc_request(x), timeout=30)
    for index, output in enumerate(response.outputs):
        if output.name != "scores":
            continue
        if response.raw_output_contents:
            return np.frombuffer(response.raw_output_contents[index], np.float32)
        return np.asarray(output.contents.fp32_contents, np.float32)
    return None


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Point:
    model: str
    contestant: str
    group: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    errors: int
    rounds: list[dict[str, float]] = field(default_factory=list)


def median_point(model: str, name: str, group: str, conc: int, runs: list[dict[str, Any]]) -> Point:
    return Point(
        model,
        name,
        group,
        conc,
        rps=statistics.median(r["rps"] for r in runs),
        p50_ms=statistics.median(r["p50_ms"] for r in runs),
        p99_ms=statistics.median(r["p99_ms"] for r in runs),
        cpu_ms_per_req=statistics.median(r.get("cpu_ms_per_req", float("nan")) for r in runs),
        errors=sum(int(r["errors"]) for r in runs),
        rounds=runs,
    )


def measure_server(
    server: Server, payload_file: Path, conc: int, args: argparse.Namespace
) -> dict[str, Any]:
    cpu0 = server.cpu_seconds()
    result = run_pinned(
        [
            "--loadgen",
            json.dumps(
                {
                    "mode": "closed",
                    "transport": "grpc" if server.body == "grpc" else "http",
                    "port": server.port,
                    "payload": str(payload_file),
                    "concurrency": conc,
                    "warmup": args.warmup,
                    "seconds": args.seconds,
                }
            ),
        ],
        timeout=args.warmup + args.seconds + 120,
    )
    cpu = server.cpu_seconds() - cpu0
    # CPU over warm-up + run divided by the requests of the run would overstate; scale by share.
    share = args.seconds / (args.warmup + args.seconds)
    result["cpu_ms_per_req"] = cpu * share / max(1, result["count"]) * 1e3
    return result


def bench_model(
    model_key: str, model: Path, args: argparse.Namespace, work: Path
) -> tuple[list[Point], dict[str, str]]:
    notes: dict[str, str] = {}
    points: list[Point] = []
    # (a) raw ORT at batch 1 and at max batch, pinned to the server core.
    for batch in (1, MAX_BATCH):
        runs = []
        for _ in range(args.rounds):
            out = subprocess.run(
                [
                    "taskset",
                    "-c",
                    SERVER_CORE,
                    sys.executable,
                    __file__,
                    "--inprocess",
                    json.dumps({"model": str(model), "batch": batch, "seconds": args.seconds}),
                ],
                capture_output=True,
                check=True,
                timeout=args.seconds + 120,
            )
            runs.append(json.loads(out.stdout.decode().strip().splitlines()[-1]))
        points.append(median_point(model_key, f"a ORT batch {batch}", "a", batch, runs))
    peers = [] if args.no_peers else args.peers
    if model_key != "mlp-fp32":
        peers = []  # the peer target is on the FP32 MLP; elsewhere b is compared with a and a'.
    servers = start_servers(model_key, model, peers, work)
    try:
        live = [
            s for s in servers if s.process is not None and s.process.poll() is None and not s.note
        ]
        for s in servers:
            if s.note:
                notes[s.name] = s.note
        for s in live:
            notes[s.name] = "outputs " + check_outputs(s, model_key, model)
        live = [s for s in live if not notes[s.name].startswith("outputs failed")]
        payloads: dict[str, Path] = {}
        for s in live:
            f = work / f"payload-{model_key}-{s.body}-{s.port}.bin"
            f.write_bytes(payload_for(model_key, s.body, s.path))
            payloads[s.name] = f
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_index in range(args.rounds):
            order = (
                live[round_index % max(1, len(live)) :] + live[: round_index % max(1, len(live))]
            )
            for s in order:
                for conc in args.concurrency:
                    r = measure_server(s, payloads[s.name], conc, args)
                    results.setdefault((s.name, conc), []).append(r)
                    print(
                        f"  [{model_key}] round {round_index + 1} {s.name:<24} c={conc:<3} "
                        f"{r['rps']:8.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
                        f"errors {r['errors']}",
                        flush=True,
                    )
        for s in live:
            for conc in args.concurrency:
                points.append(
                    median_point(model_key, s.name, s.group, conc, results[(s.name, conc)])
                )
        if args.open_loop and not model_key.startswith("tiny"):
            for s in live:
                best = max(p.rps for p in points if p.contestant == s.name)
                for fraction in (0.5, 0.8):
                    r = run_pinned(
                        [
                            "--loadgen",
                            json.dumps(
                                {
                                    "mode": "open",
                                    "transport": "grpc" if s.body == "grpc" else "http",
                                    "port": s.port,
                                    "payload": str(payloads[s.name]),
                                    "rate": best * fraction,
                                    "seconds": args.seconds,
                                }
                            ),
                        ],
                        timeout=args.seconds + 120,
                    )
                    points.append(
                        Point(
                            model_key,
                            f"{s.name} open {int(fraction * 100)}%",
                            s.group,
                            0,
                            r["rps"],
                            r["p50_ms"],
                            r["p99_ms"],
                            float("nan"),
                            r["errors"],
                        )
                    )
    finally:
        for s in servers:
            stop(s)
    return points, notes


def machine() -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load[0]:.1f}"
    )


def render(
    points: list[Point], notes: dict[str, dict[str, str]], args: argparse.Namespace, started: str
) -> str:
    lines = [
        "## Serving runtime (`make bench-runtime`)",
        "",
        f"- Date: {started}",
        f"- Machine: {machine()}",
        f"- Command: `.venv/bin/python tests/bench/bench_runtime.py {' '.join(sys.argv[1:])}` "
        "(`make bench-runtime` runs it with the defaults)",
        f"- Shortened rounds to fit the machine: warm-up {args.warmup:g} s, "
        f"{args.rounds} rounds of "
        f"{args.seconds:g} s per point (BENCHMARKS.md asks 5 s + 3 x 15 s), median of rounds; "
        "server pinned to core 0 (one intra-op thread), load generator (asyncio + raw HTTP/1.1 "
        "keep-alive, or grpc.aio with the ModelInfer request serialized once; one connection per "
        "concurrent client) pinned to core 1.",
        "- Ratios are to (a) raw ORT at batch 1 of the same model (throughput: x of (a) req/s; "
        "latency: x of (a) per-call latency). CPU ms/req counts every process of the server.",
        "",
    ]
    for model in dict.fromkeys(p.model for p in points):
        base = next(p for p in points if p.model == model and p.contestant == "a ORT batch 1")
        lines += [
            f"### {model}",
            "",
            "| contestant | conc | req/s | x(a) | p50 ms | p99 ms | p99 x(a) | CPU ms/req "
            "| non-2xx |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in points:
            if p.model != model:
                continue
            conc = str(p.concurrency) if p.concurrency else "open"
            if p.group == "a":
                conc = f"batch {p.concurrency}"
            lines.append(
                f"| {p.contestant} | {conc} | {p.rps:,.0f} | {p.rps / base.rps:.2f} | "
                f"{p.p50_ms:.2f} | {p.p99_ms:.2f} | {p.p99_ms / base.p99_ms:.1f} | "
                f"{p.cpu_ms_per_req:.3f} | {p.errors} |"
            )
        for name, note in notes.get(model, {}).items():
            lines.append(f"\n- {name}: {note}")
        lines.append("")
    return "\n".join(lines)


def targets(points: list[Point]) -> list[str]:
    def get(model: str, name: str, conc: int) -> Point | None:
        return next(
            (
                p
                for p in points
                if p.model == model and p.contestant == name and p.concurrency == conc
            ),
            None,
        )

    out = []
    a1 = get("mlp-fp32", "a ORT batch 1", 1)
    if a1:
        for body in ("", " bin", " grpc"):
            b8 = get("mlp-fp32", f"b modelship{body}", 8)
            if b8:
                target = {"": " (target >= 0.6)", " bin": " (target >= 0.8)"}.get(body, "")
                out.append(
                    f"mlp: b{body or ' json'} at c=8 = {b8.rps / a1.rps:.2f}x (a) batch 1{target}"
                )
            bb = get("mlp-fp32", f"b modelship +batch{body}", 64)
            if bb:
                out.append(
                    f"mlp: b +batch{body or ' json'} at c=64 = {bb.rps / a1.rps:.2f}x (a) "
                    f"batch 1{' (target >= 1.5)' if body != ' grpc' else ''}"
                )
        peers = [p for p in points if p.model == "mlp-fp32" and p.group == "c" and p.concurrency]
        ours = [p for p in points if p.model == "mlp-fp32" and p.group == "b" and p.concurrency]
        if peers and ours:
            best_peer = max(peers, key=lambda p: p.rps)
            best_ours = max(ours, key=lambda p: p.rps)
            out.append(
                f"mlp: best b ({best_ours.contestant} c={best_ours.concurrency}, "
                f"{best_ours.rps:,.0f} req/s, "
                f"p99 {best_ours.p99_ms:.2f} ms) = {best_ours.rps / best_peer.rps:.2f}x best c "
                f"({best_peer.contestant} c={best_peer.concurrency}, {best_peer.rps:,.0f} req/s, "
                f"p99 {best_peer.p99_ms:.2f} ms) (target >= 2x, p99 no worse)"
            )
    for model in ("tiny-fp32", "mlp-fp32"):
        for conc in (1, 8, 64):
            uvicorn = get(model, "a' ASGI floor", conc)
            for name in (
                "f granian ASGI floor",
                "f granian RSGI floor",
                "f httptools protocol floor",
            ):
                candidate = get(model, name, conc)
                if uvicorn and candidate:
                    out.append(
                        f"{model}: {name} at c={conc} = {candidate.rps / uvicorn.rps:.2f}x the "
                        f"uvicorn floor (p99 {candidate.p99_ms:.2f} vs {uvicorn.p99_ms:.2f} ms)"
                    )
            on_uvicorn = get(model, "f modelship on uvicorn", conc)
            for name in ("f modelship on granian", "b modelship"):
                other = get(model, name, conc)
                if on_uvicorn and other:
                    out.append(
                        f"{model}: {name} at c={conc} = {other.rps / on_uvicorn.rps:.2f}x "
                        f"modelship on uvicorn (p99 {other.p99_ms:.2f} vs "
                        f"{on_uvicorn.p99_ms:.2f} ms)"
                    )
    floor = [p for p in points if p.model == "tiny-fp32" and p.group == "a'"]
    for conc in (1, 8, 64):
        f = next((p for p in floor if p.concurrency == conc), None)
        for body in ("", " bin"):
            b = get("tiny-fp32", f"b modelship{body}", conc)
            if f and b:
                out.append(
                    f"tiny: b{body or ' json'} at c={conc} = {b.rps / f.rps:.2f}x (a') "
                    "(target >= 1.0)"
                )
    return out


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64]
    )
    p.add_argument("--models", default="tiny-fp32,mlp-fp32,mlp-int8")
    p.add_argument(
        "--peers",
        type=lambda s: [x for x in s.split(",") if x],
        default=["kserve", "mlserver", "pytriton"],
    )
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--no-open-loop", dest="open_loop", action="store_false")
    p.add_argument(
        "--write-docs", action="store_true", help=f"replace the runtime section of {DOCS}"
    )
    p.add_argument("--inprocess", help=argparse.SUPPRESS)
    p.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inprocess:
        spec = json.loads(args.inprocess)
        print(json.dumps(run_inprocess(Path(spec["model"]), spec["batch"], spec["seconds"])))
        return 0
    if args.loadgen:
        print(json.dumps(loadgen_main(json.loads(args.loadgen))))
        return 0
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("bench-runtime needs taskset and at least 2 cores", file=sys.stderr)
        return 2
    # Background jobs ignore SIGINT; SIGTERM must still run the `finally` that stops servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    wanted = args.models.split(",")
    models = build_models(quantize="mlp-int8" in wanted)
    work = BENCH_DIR / "work"
    work.mkdir(parents=True, exist_ok=True)
    all_points: list[Point] = []
    all_notes: dict[str, dict[str, str]] = {}
    for key in wanted:
        print(f"== {key}", flush=True)
        points, notes = bench_model(key, models[key], args, work)
        all_points += points
        all_notes[key] = notes
    section = render(all_points, all_notes, args, started)
    verdicts = targets(all_points)
    section += (
        "\n### Against the targets of issue 16\n\n" + "\n".join(f"- {v}" for v in verdicts) + "\n"
    )
    print(section)
    out = BENCH_DIR / f"results-{started.replace(' ', '_').replace(':', '')}.json"
    out.write_text(json.dumps([asdict(p) for p in all_points], indent=1))
    print(f"raw results: {out}")
    if args.write_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
