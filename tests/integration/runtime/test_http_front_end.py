"""The runtime's own HTTP/1.1 front end (http1.py) on the wire: raw sockets against a real
`modelship-runtime serve`, for what HTTP clients other than ours may do; the V2 routes
themselves are the conformance suite's. uvicorn, still selectable, answers the same routes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.integration.runtime.server_process import ServerProcess, served

KEEP_ALIVE_S = 2.0
BODY = orjson.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}]}
)
INFER = (
    b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


@pytest.fixture(scope="module")
def server(mlp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(
        mlp_path,
        "mlp",
        tmp_path_factory.mktemp("logs"),
        "--max-body-bytes",
        "65536",
        "--keep-alive-s",
        str(KEEP_ALIVE_S),
    ) as started:
        yield started


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from `buffer` + the socket (Content-Length framed); what follows it stays
    in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def _closed_by_server(sock: socket.socket, within_s: float = 10.0) -> bool:
    """True once the server has closed the connection (recv answers EOF or a reset)."""
    sock.settimeout(within_s)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"
            + INFER
            + b"GET /v2/models/nope HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        buffer = bytearray()
        answers = [_read_response(sock, buffer) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 404]
    assert b'"scores"' in answers[1][2]


def test_expect_100_continue_gets_the_interim_answer_first(server: ServerProcess) -> None:
    head, _, body = INFER.partition(b"\r\n\r\n")
    with _connect(server) as sock:
        sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
        buffer = bytearray()
        status, _, _ = _read_response(sock, buffer)
        assert status == 100
        sock.sendall(body)
        status, _, answer = _read_response(sock, buffer)
    assert status == 200 and b'"scores"' in answer


def test_a_chunked_body_is_read_whole(server: ServerProcess) -> None:
    head = (
        b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    half = len(BODY) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:half], BODY[half:]))
    with _connect(server) as sock:
        sock.sendall(head + chunks + b"0\r\n\r\n")
        status, _, answer = _read_response(sock, bytearray())
    assert status == 200 and b'"scores"' in answer


def test_malformed_request_gets_400_and_the_connection_closes(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"this is not HTTP\r\n\r\n")
        status, headers, body = _read_response(sock, bytearray())
        assert status == 400 and headers.get("connection") == "close"
        assert b"malformed HTTP request" in body
        assert _closed_by_server(sock)


def test_a_declared_body_over_the_limit_gets_413_without_being_read(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
            b"\r\nContent-Length: 10000000\r\n\r\n"
        )
        status, headers, body = _read_response(sock, bytearray())
        assert status == 413 and headers.get("connection") == "close"
        assert b"exceeds the limit of 65536" in body
        assert _closed_by_server(sock)


def test_headers_over_the_bound_get_431(server: ServerProcess) -> None:
    padding = b"X-Pad: " + b"a" * 8000 + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n" + padding * 10 + b"\r\n")
        status, _, body = _read_response(sock, bytearray())
        assert status == 431 and b"exceed" in body
        assert _closed_by_server(sock)


def test_http10_closes_unless_asked_to_keep_alive(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.0\r\n\r\n")
        status, headers, _ = _read_response(sock, bytearray())
        assert status == 200 and headers.get("connection") == "close"
        assert _closed_by_server(sock)
    with _connect(server) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(b"GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = _read_response(sock, buffer)
            assert status == 200 and headers.get("connection") == "keep-alive"


def test_head_gets_the_head_only(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"HEAD /v2 HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405")  # the route serves GET; no body follows
        buffer[:] = rest
        status, _, _ = _read_response(sock, buffer)
    assert status == 200


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, bytearray())[0] == 200
        started = time.monotonic()
        assert _closed_by_server(sock, within_s=4 * KEEP_ALIVE_S)
        # Closed by the idle timer: not at once, and well before the test's own deadline.
        assert KEEP_ALIVE_S / 2 < time.monotonic() - started < 3 * KEEP_ALIVE_S


def test_a_busy_connection_is_not_closed_as_idle(server: ServerProcess) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        deadline = time.monotonic() + 2 * KEEP_ALIVE_S  # never idle that long in between
        while time.monotonic() < deadline:
            sock.sendall(INFER)
            assert _read_response(sock, buffer)[0] == 200


def test_uvicorn_serves_the_same_routes(mlp_path: Path, tmp_path: Path) -> None:
    with (
        served(mlp_path, "mlp", tmp_path, "--http-server", "uvicorn") as uvicorn_server,
        _connect(uvicorn_server) as sock,
    ):
        buffer = bytearray()
        sock.sendall(INFER)
        status, _, answer = _read_response(sock, buffer)
        assert status == 200 and b'"scores"' in answer
        sock.sendall(b"GET /v2/models/nope HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, buffer)[0] == 404
