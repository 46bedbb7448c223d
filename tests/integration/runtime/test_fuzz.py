"""Ten thousand malformed requests: every one a 4xx, the server alive, its memory bounded."""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import orjson
import psutil
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.integration.runtime.onnx_models import ONNX_TYPES
from tests.integration.runtime.server_process import ServerProcess, served

HTTP_REQUESTS = 9_000
GRPC_REQUESTS = 1_000
BODY_LIMIT = 65_536
RSS_GROWTH_LIMIT = 64 * 1024 * 1024

Request = tuple[str, str, bytes, dict[str, str]]


def _valid_doc(rnd: random.Random) -> dict[str, Any]:
    rows = rnd.randint(1, 2)
    inputs = []
    for dt in ONNX_TYPES:
        data: list[Any]
        if dt == "BYTES":
            data = ["s"] * (rows * 3)
        elif dt == "BOOL":
            data = [True] * (rows * 3)
        else:
            data = [1] * (rows * 3)
        inputs.append({"name": f"in_{dt}", "datatype": dt, "shape": [rows, 3], "data": data})
    return {"id": "f", "inputs": inputs}


JUNK_VALUES: list[Any] = [
    None,
    -1,
    0,
    2**70,
    -(2**70),
    1e308,
    "x",
    "",
    [],
    {},
    [[[]]],
    [None],
    ["FP32"],
    True,
    [1, [2, [3]]],
    {"a": 1},
    [-1, 3],
    [2**40, 2**40],
    "\U0001f642" * 3,
    [1.5, 2.5, 3.5],
]
BAD_SHAPES: list[Any] = [
    [-1, 3],
    "x",
    [2**40, 2**40],
    [1.5, 3],
    None,
    [True, 3],
    [3],
    [1, 3, 1],
    [9, 3],
    {},
    [2**70],
]
BAD_DATATYPES: list[Any] = ["FP33", "", None, 3, "fp32", "BF16", "STRING", ["FP32"]]


def _break_input(tensor: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    """One change that always makes this input invalid for the identity model."""
    broken = dict(tensor)
    choice = rnd.randrange(6)
    if choice == 0:
        del broken[rnd.choice(["name", "datatype", "shape", "data"])]
    elif choice == 1:
        broken["shape"] = rnd.choice(BAD_SHAPES)
    elif choice == 2:
        others = [dt for dt in ONNX_TYPES if dt != tensor["datatype"]]
        broken["datatype"] = rnd.choice(BAD_DATATYPES + others)
    elif choice == 3:
        data = list(tensor["data"])
        broken["data"] = rnd.choice([data + data[:1], data[:-1], [], {"a": data}])
    elif choice == 4:
        broken["name"] = rnd.choice(["in_nope", "", 7, None, "out_FP32"])
    else:
        broken["parameters"] = rnd.choice(
            [3, "x", [], {"binary_data_size": rnd.choice([-1, 5, "x", 2**40])}]
        )
    return broken


def _malformed_doc(rnd: random.Random) -> Any:
    doc = _valid_doc(rnd)
    choice = rnd.randrange(8)
    if choice <= 3:
        inputs = list(doc["inputs"])
        index = rnd.randrange(len(inputs))
        inputs[index] = _break_input(inputs[index], rnd)
        doc["inputs"] = inputs
    elif choice == 4:
        inputs = list(doc["inputs"])
        if rnd.random() < 0.5:
            inputs.pop(rnd.randrange(len(inputs)))  # a missing input
        else:
            inputs.append(inputs[rnd.randrange(len(inputs))])  # a duplicated input
        doc["inputs"] = inputs
    elif choice == 5:
        doc["inputs"] = rnd.choice([{}, [], "x", None, [1, 2], [[]]])
    elif choice == 6:
        junk_by_key: dict[str, list[Any]] = {
            "id": [3, [], {}, True],
            "parameters": [3, "x", [], [{"a": 1}]],
            "outputs": [
                3,
                "x",
                [3],
                [{"name": "nope"}],
                [{"name": "out_FP32", "parameters": {"binary_data": 3}}],
            ],
        }
        key = rnd.choice(list(junk_by_key))
        doc[key] = rnd.choice(junk_by_key[key])
    else:
        doc = rnd.choice(JUNK_VALUES)
    return doc


def _flip_structure(base: bytes, rnd: random.Random) -> bytes:
    """Replace one structural JSON character, which always breaks the syntax."""
    positions = [i for i, c in enumerate(base) if chr(c) in '{}[]":,']
    flipped = bytearray(base)
    position = rnd.choice(positions)
    flipped[position] = rnd.choice([c for c in b"xX7 #;'" if c != base[position]])
    return bytes(flipped)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # the stdlib encoder, because junk includes ints > 64 bits


def _binary_request(rnd: random.Random) -> tuple[bytes, dict[str, str]]:
    """A binary-extension request whose lengths lie one way or another."""
    size = rnd.choice([0, 1, 5, 24, 48, 200])
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "in_FP32",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )
    blob = rnd.randbytes(rnd.choice([0, 3, 24, 100]))
    length = rnd.choice([len(header), len(header) - 1, len(header) + 7, 0, -3, 10**12])
    body = header + blob
    if size == len(blob) and length == len(header):
        body += b"\0"  # otherwise a valid request might slip in; the trailing byte is a lie too
    return body, {"Inference-Header-Content-Length": str(length)}


def _malformed_tf_doc(rnd: random.Random) -> Any:
    """A TF Serving `:predict` body with one thing wrong (or several)."""
    junk = rnd.choice(JUNK_VALUES)
    row = {f"in_{dt}": [1, 2, 3] for dt in ONNX_TYPES if dt != "BYTES"} | {"in_BYTES": ["a"] * 3}
    row["in_INT64"] = [1, 2, 3, 4]  # the model takes 3 columns: never a valid request
    return rnd.choice(
        [
            junk,
            {"instances": junk},
            {"inputs": junk},
            {"instances": [row], "inputs": row},
            {"instances": [row, junk]},
            {"instances": [dict(row, in_FP32=junk)]},
            {"inputs": dict(row, in_INT8=[[junk] * 3])},
            {"inputs": dict(row, in_BYTES=[[{"b64": "%%%"}] * 3])},
            {"inputs": dict(row, in_BYTES=[[{"b64": 1}] * 3])},
            {"inputs": dict(row, in_BOOL=[["x", 1, None]])},
            {"inputs": {**row, "nope": [[1]]}},
            {"signature_name": junk, "inputs": row},
            {"instances": [[1, 2, 3]]},
        ]
    )


def malformed_requests(count: int, seed: int) -> Iterator[Request]:
    rnd = random.Random(seed)
    infer = "/v2/models/types/infer"
    base = orjson.dumps(_valid_doc(rnd))
    for i in range(count):
        kind = i % 10
        headers: dict[str, str] = {}
        if kind == 0:
            yield "POST", infer, b"\xff" + rnd.randbytes(rnd.randint(0, 300)), headers
        elif kind == 1:
            yield "POST", infer, base[: rnd.randint(0, len(base) - 1)], headers
        elif kind in (2, 3):
            yield "POST", infer, _dumps(_malformed_doc(rnd)), headers
        elif kind == 4:
            yield "POST", "/v1/models/types:predict", _dumps(_malformed_tf_doc(rnd)), headers
        elif kind == 5:
            body, headers = _binary_request(rnd)
            yield "POST", infer, body, headers
        elif kind == 6:
            yield "POST", infer, _flip_structure(base, rnd), headers
        elif kind == 7:
            method, path = rnd.choice(
                [
                    ("POST", "/v2/models/other/infer"),
                    ("POST", "/v2/models/types/versions/9/infer"),
                    ("POST", "/v2/models/types/x"),
                    ("GET", "/v2/models"),
                    ("GET", "/v2/health/x"),
                    ("GET", "/nope"),
                    ("PUT", "/v2/models/types/infer"),
                    ("GET", "/v2/models/types/infer"),
                    ("DELETE", "/v2/models/types"),
                    ("POST", "/v2/models/other/feedback"),
                    ("GET", "/v1/models/other"),
                    ("GET", "/v1/models/types/versions/9/metadata"),
                    ("GET", "/v1/models/types/labels/stable"),
                    ("POST", "/v1/models/types:regress"),
                    ("GET", "/v1/models/types:predict"),
                    ("POST", "/v1/models"),
                    ("POST", "/v1/models/types/versions:predict"),
                ]
            )
            yield method, path, base, headers
        elif kind == 8:
            garbage = rnd.choice(
                [
                    {"id": "f"},
                    {"label": 1},
                    [],
                    {"id": 3, "label": 1},
                    [{"id": "", "label": 1}],
                    rnd.choice(JUNK_VALUES),
                    [{"id": "f", "label": 1}, 3],
                ]
            )
            yield "POST", "/v2/models/types/feedback", _dumps(garbage), headers
        elif i % 100 == 9:
            yield "POST", infer, b"[" + b"1," * (BODY_LIMIT // 2) + b"1]", headers
        else:
            deep = b"[" * rnd.randint(500, 3000)
            yield "POST", infer, b'{"inputs":' + deep, headers


def _http_worker(
    port: int, requests: list[Request], statuses: Counter[int], lock: threading.Lock
) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    local: Counter[int] = Counter()
    failures: list[str] = []
    for method, path, body, headers in requests:
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            # The server may close a connection after a framing error; reconnect once.
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        local[response.status] += 1
        if response.status >= 500:
            failures.append(
                f"{response.status} for {method} {path} {body[:120]!r}: {payload[:200]!r}"
            )
        elif response.status >= 400 and not orjson.loads(payload).get("error"):
            failures.append(f"{response.status} without an error message for {path}")
    conn.close()
    with lock:
        statuses.update(local)
    return failures


def _grpc_requests(count: int, seed: int) -> Iterator[Any]:
    rnd = random.Random(seed)
    tensor = service_pb2.ModelInferRequest.InferInputTensor
    datatypes = [*ONNX_TYPES, "FP8", "", "BF16"]
    for _ in range(count):
        inputs = []
        raws = []
        for _ in range(rnd.randint(0, 3)):
            shape = [rnd.choice([-1, 0, 1, 2, 3, 2**40]) for _ in range(rnd.randint(0, 3))]
            name = rnd.choice(["in_FP32", "in_INT64", "in_BYTES", "x", ""])
            inputs.append(tensor(name=name, datatype=rnd.choice(datatypes), shape=shape))
            raws.append(rnd.randbytes(rnd.choice([0, 4, 12, 24, 48])))
        if rnd.random() < 0.3:
            raws = raws[:-1]
        yield service_pb2.ModelInferRequest(
            model_name=rnd.choice(["types", "types", "other"]),
            model_version=rnd.choice(["", "1", "2"]),
            inputs=inputs,
            raw_input_contents=raws if rnd.random() < 0.8 else [],
        )


@pytest.fixture(scope="module")
def fuzz_server(
    identity_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(
        identity_path, "types", tmp_path_factory.mktemp("logs"), "--max-body-bytes", str(BODY_LIMIT)
    ) as server:
        yield server


def _rss(server: ServerProcess) -> int:
    rss: int = psutil.Process(server.process.pid).memory_info().rss
    return rss


def _run_http(
    server: ServerProcess, requests: list[Request], workers: int = 4
) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    chunks = [requests[i::workers] for i in range(workers)]
    work: Callable[[list[Request]], list[str]] = lambda chunk: _http_worker(  # noqa: E731
        server.http_port, chunk, statuses, lock
    )
    with ThreadPoolExecutor(workers) as pool:
        failures = [f for result in pool.map(work, chunks) for f in result]
    return statuses, failures


def test_ten_thousand_malformed_requests(fuzz_server: ServerProcess) -> None:
    # Warm-up round so that allocator pools and caches exist before the baseline.
    _run_http(fuzz_server, list(malformed_requests(1000, seed=99)))
    baseline = _rss(fuzz_server)

    statuses, failures = _run_http(fuzz_server, list(malformed_requests(HTTP_REQUESTS, seed=1)))
    assert not failures, failures[:10]

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(fuzz_server.grpc_url))
    codes: Counter[str] = Counter()
    for request in _grpc_requests(GRPC_REQUESTS, seed=2):
        try:
            stub.ModelInfer(request, timeout=10)
            codes["OK"] += 1
        except grpc.RpcError as exc:
            codes[exc.code().name] += 1
            assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                exc.details()
            )
            assert exc.details()

    assert fuzz_server.alive(), fuzz_server.log()
    assert sum(statuses.values()) == HTTP_REQUESTS
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) == HTTP_REQUESTS, statuses
    assert sum(codes.values()) == GRPC_REQUESTS
    growth = _rss(fuzz_server) - baseline
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB"

    # Still serving real requests afterwards.
    doc = orjson.dumps(_valid_doc(random.Random(0)))
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_server.http_port, timeout=10)
    conn.request("POST", "/v2/models/types/infer", body=doc)
    assert conn.getresponse().status == 200
    conn.close()
