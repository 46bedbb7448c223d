"""The runtime's own HTTP/1.1 front end: asyncio protocols parsing with httptools (llhttp, the
C parser uvicorn uses too) and handing each request to RestCore, with no ASGI layer between.

Why not uvicorn: on one core, uvicorn and the ASGI layer took 25-34% of a request's time on
the benchmark's MLP; this front end and the routes take 15%, and serve 1.2-2.2x the requests
(docs/benchmarks.md, issue 16). What it does: keep-alive and pipelining (answers in order),
chunked request bodies, `Expect: 100-continue`, HTTP/1.0, a bound on the request line and
headers (431) and on the body (413, then the connection closes), an idle keep-alive timeout,
back-pressure (reading pauses while requests queue behind the one being served, or while the
client does not read its answers), a client that leaves cancels its waiting request, and a
graceful shutdown (stop accepting, answer the requests begun, close idle connections).
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote

import httptools
import orjson

from modelship_runtime.server.errors import BadRequest, InferenceError
from modelship_runtime.server.rest import (
    Exchange,
    Reply,
    RestCore,
    declared_too_large,
    grown_too_large,
)

log = logging.getLogger(__name__)

# Request line and headers together; past it the answer is 431 and the connection closes.
MAX_HEAD_BYTES = 64 * 1024
# Pipelined requests parsed ahead of the one being served before reading pauses.
MAX_QUEUED = 16

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Refused(Exception):
    """Raised in a parser callback: the request is refused before it is complete."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Request(Exchange):
    """One parsed request; the body is already whole (or refused) when RestCore sees it."""

    __slots__ = ("_body", "_connection", "_error", "fixed", "headers", "http10", "keep_alive")

    def __init__(
        self,
        connection: _Connection,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        *,
        body: bytes,
        error: InferenceError | None,
        keep_alive: bool,
        http10: bool,
    ) -> None:
        self._connection = connection
        self.method = method
        self.path = path
        self.headers = headers
        self._body = body
        self._error = error
        self.keep_alive = keep_alive
        self.http10 = http10
        # Set for a request refused while parsing: this is its answer, RestCore never sees it.
        self.fixed: Reply | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def body(self, limit: int) -> bytes:
        # The connection held the body to RestCore's own limit while reading it.
        if self._error is not None:
            raise self._error
        return self._body

    def on_leave(self, callback: Callable[[], None]) -> Callable[[], None]:
        # The connection knows when its client goes (connection_lost): no task per request.
        self._connection.leave_callback = callback
        return self._connection.stop_watching


class HttpFrontEnd:
    """Listens on one address; every connection is a `_Connection`."""

    def __init__(self, core: RestCore, *, keep_alive_s: float) -> None:
        self.core = core
        self.keep_alive_s = keep_alive_s
        self.connections: set[_Connection] = set()
        self.shutting_down = False
        self._server: asyncio.Server | None = None
        self._all_closed = asyncio.Event()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, loop), host, port, backlog=2048, reuse_address=True
        )

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if self.shutting_down and not self.connections:
            self._all_closed.set()

    async def shutdown(self, timeout_s: float) -> bool:
        """Stop accepting, answer the requests already begun, close idle connections; what is
        still open after `timeout_s` is closed too. True when everything finished in time."""
        self.shutting_down = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        if not self.connections:
            self._all_closed.set()
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout_s)
            finished = True
        except TimeoutError:
            finished = False
            for connection in list(self.connections):
                connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
        return finished


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, serves them one at a time, in order."""

    def __init__(self, front: HttpFrontEnd, loop: asyncio.AbstractEventLoop) -> None:
        self._front = front
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # The request being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._error: InferenceError | None = None
        self._in_message = False
        # Requests parsed and not answered; the first one is being served when _serving.
        self._queue: deque[_Request] = deque()
        self._serving: asyncio.Task[Reply | None] | None = None
        self.leave_callback: Callable[[], None] | None = None
        self._stop_reading = False  # a refusal or a closing request: parse nothing more
        self._closing = False  # close once the requests queued are answered
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._idle_timer: asyncio.TimerHandle | None = None

    # --- transport events -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._front.connections.add(self)
        if self._front.shutting_down:
            self._transport.close()
            return
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_idle()
        self._queue.clear()  # parsed but not begun: nobody is left to answer
        callback, self.leave_callback = self.leave_callback, None
        if callback is not None:
            callback()
        self._front.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._stop_reading:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _Refused):
                self._refuse(reason.status, reason.message)
            elif not isinstance(reason, _Stop):
                log.error("HTTP parser callback failed", exc_info=reason)
                self._refuse(500, "internal error while reading the request")
        except httptools.HttpParserUpgrade:
            # Protocol upgrades (h2c, websockets) are not served: a whole request is answered
            # over HTTP/1.1, then the connection closes.
            self._stop_reading = True
            self._closing = True
            if self._serving is None and not self._queue:
                self._close()
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    # --- parser callbacks (httptools) -----------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._cancel_idle()
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._chunks = []
        self._size = 0
        self._error = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self._headers.append((name.lower(), value))

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Refused(431, f"request line and headers exceed {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        limit = self._front.core.max_body_bytes
        declared = None
        expect = None
        for key, value in self._headers:
            if key == b"content-length":
                declared = value
            elif key == b"expect":
                expect = value
        if declared is not None:
            try:
                refusal = declared_too_large(declared, limit)
            except BadRequest as exc:
                raise _Refused(400, exc.message) from None
            if refusal is not None:
                # Answered now, without reading a body nobody will use; then the connection
                # closes, as the rest of that body would otherwise be read as a request.
                self._error = refusal
                self._dispatch()
                raise _Stop
        if expect is not None and expect.lower() == b"100-continue":
            assert self._transport is not None
            self._transport.write(_CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._front.core.max_body_bytes:
            self._error = grown_too_large(self._front.core.max_body_bytes)
            self._chunks = []
            self._dispatch()
            raise _Stop
        self._chunks.append(chunk)

    def on_message_complete(self) -> None:
        self._dispatch()
        if self._stop_reading:
            raise _Stop  # the client asked to close: what follows is not read

    # --- serving ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """The request being parsed is whole (or refused): queue it, serve it when its turn
        comes."""
        parser = self._parser
        self._in_message = False
        method = parser.get_method().decode("ascii", "replace")
        try:
            raw_path = httptools.parse_url(self._url).path or b"/"
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400, "the request target is not a valid URL") from None
        text = raw_path.decode("latin-1")
        path = unquote(text) if "%" in text else text
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        keep_alive = parser.should_keep_alive() and self._error is None
        request = _Request(
            self,
            method,
            path,
            self._headers,
            body=body,
            error=self._error,
            keep_alive=keep_alive,
            http10=parser.get_http_version() == "1.0",
        )
        self._chunks = []
        if not keep_alive:
            self._stop_reading = True
        self._queue.append(request)
        if self._serving is None:
            self._serve_next()
        else:
            self._update_reading()

    def _serve_next(self) -> None:
        request = self._queue[0]
        if request.fixed is not None:
            self._queue.popleft()
            self._write(request, request.fixed)
            self._close()
            return
        task = self._loop.create_task(self._front.core.handle(request))
        self._serving = task
        task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[Reply | None]) -> None:
        self._serving = None
        self.leave_callback = None
        if self._closed:
            return
        request = self._queue.popleft()
        if task.cancelled():
            reply: Reply | None = None
        elif (exc := task.exception()) is not None:
            log.error("request failed outside the routes", exc_info=exc)
            reply = Reply(500, orjson.dumps({"error": f"internal error: {type(exc).__name__}"}))
        else:
            reply = task.result()
        if reply is None:  # the client left, or the server gave up on it
            self._close()
            return
        last = not self._queue and not self._in_message
        closing = not request.keep_alive or (last and (self._closing or self._front.shutting_down))
        self._write(request, reply, closing)
        if closing:
            self._close()
        elif self._queue:
            self._serve_next()
            self._update_reading()
        else:
            self._update_reading()
            if not self._in_message:
                self._arm_idle()

    def stop_watching(self) -> None:
        self.leave_callback = None

    def _write(self, request: _Request, reply: Reply, closing: bool = True) -> None:
        assert self._transport is not None
        status = _STATUS_LINES.get(reply.status) or f"HTTP/1.1 {reply.status} \r\n".encode()
        parts = [
            status,
            b"content-type: ",
            reply.content_type,
            b"\r\ncontent-length: ",
            str(len(reply.body)).encode(),
            b"\r\n",
        ]
        if reply.extra:
            for name, value in reply.extra:
                parts += [name, b": ", value, b"\r\n"]
        if closing:
            parts.append(b"connection: close\r\n")
        elif request.http10:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if request.method != "HEAD":
            parts.append(reply.body)
        self._transport.write(b"".join(parts))

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be read: answered `status` after everything before it, then
        the connection closes; nothing after it is read."""
        self._stop_reading = True
        self._in_message = False
        refusal = _Request(self, "", "", [], body=b"", error=None, keep_alive=False, http10=False)
        refusal.fixed = Reply(status, orjson.dumps({"error": message}))
        self._queue.append(refusal)
        if self._serving is None:
            self._serve_next()

    # --- connection state ------------------------------------------------------------------

    def _update_reading(self) -> None:
        """Reading pauses while the client does not read its answers or while requests queue
        behind the one being served; it resumes when both clear."""
        if self._transport is None or self._closed:
            return
        wanted = not self._writing_paused and len(self._queue) < MAX_QUEUED
        if wanted and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        elif not wanted and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def _arm_idle(self) -> None:
        self._cancel_idle()
        if self._front.keep_alive_s > 0:
            self._idle_timer = self._loop.call_later(self._front.keep_alive_s, self._idle)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle(self) -> None:
        self._idle_timer = None
        if self._serving is None and not self._queue and not self._in_message:
            self._close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the requests already begun."""
        self._closing = True
        if self._serving is None and not self._queue and not self._in_message:
            self._close()

    def _close(self) -> None:
        self._cancel_idle()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
        if self._transport is not None:
            self._transport.abort()


class _Stop(Exception):
    """Raised in a parser callback once the request is answered early: parse no further."""
