"""The REST routes: V2 (and TF Serving) paths to the data plane, for any HTTP front end.

`RestCore` maps one exchange (method, path, headers, body) to a `Reply`; the front ends only
carry bytes: `http1.HttpFrontEnd` (the runtime's own HTTP/1.1 server) and `RestApp` (ASGI, for
uvicorn or any other ASGI server)."""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from modelship_runtime.server import tfserving
from modelship_runtime.server.dataplane import DataPlane
from modelship_runtime.server.errors import (
    BadRequest,
    InferenceError,
    ModelNotFound,
    Overloaded,
    PayloadTooLarge,
)
from modelship_runtime.server.protocol import InferenceResponse
from modelship_runtime.server.rest_codec import decode_request, encode_response

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTET = b"application/octet-stream"
HEADER_LENGTH = b"inference-header-content-length"
# A client's own deadline for its request, in milliseconds (the server's --deadline-ms caps it).
DEADLINE_HEADER = b"x-modelship-deadline-ms"


class _MethodNotAllowed(InferenceError):
    status = 405


@dataclass(slots=True)
class Reply:
    """What a front end writes back: status, body, content type, and any further headers."""

    status: int
    body: bytes
    content_type: bytes = JSON
    extra: list[tuple[bytes, bytes]] | None = None


def _error(exc: InferenceError) -> Reply:
    extra = None
    if isinstance(exc, Overloaded):
        extra = [(b"retry-after", str(exc.retry_after_s).encode())]
    return Reply(exc.status, orjson.dumps({"error": exc.message}), extra=extra)


def declared_too_large(declared: bytes, limit: int) -> PayloadTooLarge | None:
    """The refusal of a body whose Content-Length is over `limit`, known before reading it
    (None when it fits); BadRequest when the header is not an integer."""
    try:
        length = int(declared)
    except ValueError:
        raise BadRequest("Content-Length is not an integer") from None
    if length > limit:
        return PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit}")
    return None


def grown_too_large(limit: int) -> PayloadTooLarge:
    """The refusal of a body found over `limit` while reading it (chunked, or undeclared)."""
    return PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")


class Exchange(abc.ABC):
    """One request as a front end hands it over: the routes read it through these."""

    method: str
    path: str

    @abc.abstractmethod
    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (`name` in lower case), or None."""

    @abc.abstractmethod
    async def body(self, limit: int) -> bytes:
        """The whole body; PayloadTooLarge past `limit` bytes, BadRequest if the client left
        before sending it all."""

    @abc.abstractmethod
    def on_leave(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` if the client disconnects before the reply; returns the function
        that stops watching."""


class RestCore:
    """The routes; no framework, because every microsecond here is per request."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def handle(self, exchange: Exchange) -> Reply | None:
        """The reply to one exchange, errors included; None when the client left first."""
        try:
            return await self._route(exchange)
        except InferenceError as exc:
            return _error(exc)
        except Exception as exc:
            log.exception("unhandled error on %s %s", exchange.method, exchange.path)
            return _error(InferenceError(f"internal error: {type(exc).__name__}: {exc}"))

    async def _body(self, exchange: Exchange) -> bytes:
        return await exchange.body(self.max_body_bytes)

    async def _route(self, exchange: Exchange) -> Reply | None:
        path, method = exchange.path, exchange.method
        parts = [p for p in path.split("/") if p]
        dp = self.dataplane
        if parts[:1] == ["metrics"] and len(parts) == 1:
            _expect(method, "GET")
            return Reply(200, dp.metrics.render(), dp.metrics.content_type.encode())
        if parts[:1] == ["v1"]:
            return await self._tf_serving(exchange, method, parts[1:])
        if not parts or parts[0] != "v2":
            raise ModelNotFound(f"no route for {method} {path}")
        rest = parts[1:]
        if not rest:
            _expect(method, "GET")
            return Reply(200, orjson.dumps(dp.server_metadata()))
        if rest[0] == "health" and len(rest) == 2 and rest[1] in ("live", "ready"):
            _expect(method, "GET")
            ok = dp.live if rest[1] == "live" else dp.ready
            return Reply(200 if ok else 503, b"")
        if rest[0] != "models" or len(rest) < 2:
            raise ModelNotFound(f"no route for {method} {path}")
        name = rest[1]
        version: str | None = None
        tail = rest[2:]
        if len(tail) >= 2 and tail[0] == "versions":
            version = tail[1]
            tail = tail[2:]
        if not tail:
            _expect(method, "GET")
            return Reply(200, orjson.dumps(dp.model_metadata(name, version)))
        if tail == ["ready"]:
            _expect(method, "GET")
            return Reply(200 if dp.model_ready(name, version) else 503, b"")
        if tail == ["infer"]:
            _expect(method, "POST")
            return await self._infer(exchange, name, version)
        if tail == ["feedback"]:
            _expect(method, "POST")
            body = await self._body(exchange)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"feedback body is not valid JSON: {exc}") from None
            result = dp.feedback(name, version, doc)
            return Reply(200, orjson.dumps(result.as_dict()))
        raise ModelNotFound(f"no route for {method} {path}")

    async def _infer(
        self, exchange: Exchange, name: str, version: str | None, *, tf_serving: bool = False
    ) -> Reply | None:
        """One inference, in the Open Inference Protocol or (tf_serving) TF Serving's
        `:predict`; both go through the same data plane."""
        dp = self.dataplane
        started = time.perf_counter()
        try:
            try:
                body = await self._body(exchange)
                if tf_serving:
                    predict = tfserving.decode_predict(
                        body, dp.model_metadata(name, version)["inputs"]
                    )
                    request = predict.request
                else:
                    request = decode_request(body, _header_length(exchange))
                requested = _requested_deadline(exchange)
            except InferenceError as exc:
                dp.count_failure(exc)
                raise
            deadline = dp.deadline(started, requested)
            if dp.may_wait:
                response = await _unless_client_leaves(
                    dp.infer(name, version, request, deadline), exchange
                )
                if response is None:
                    dp.metrics.abandoned.inc()
                    return None
            else:
                # Inline: nothing to wait for, so nothing to watch.
                response = await dp.infer(name, version, request, deadline)
            if tf_serving:
                return Reply(200, tfserving.encode_predict(response, predict.form))
            payload, json_length = encode_response(response, request)
            if json_length is None:
                return Reply(200, payload)
            return Reply(200, payload, OCTET, [(HEADER_LENGTH, str(json_length).encode())])
        finally:
            dp.observe_request(started)

    async def _tf_serving(self, exchange: Exchange, method: str, parts: list[str]) -> Reply | None:
        """/v1/models/{name}[/versions/{version}][/metadata | :predict] (TF Serving's REST)."""
        if len(parts) < 2 or parts[0] != "models":
            raise ModelNotFound(f"no route for {method} /v1/{'/'.join(parts)}")
        name, tail = parts[1], parts[2:]
        verb = None
        last = tail[-1] if tail else name
        if ":" in last:
            last, verb = last.split(":", 1)
            if tail:
                tail[-1] = last
            else:
                name = last
        version = None
        if len(tail) >= 2 and tail[0] == "versions":
            version, tail = tail[1], tail[2:]
        elif len(tail) >= 2 and tail[0] == "labels":
            raise ModelNotFound("version labels are not served; name the version or leave it out")
        dp = self.dataplane
        if verb is None and not tail:
            _expect(method, "GET")
            ready = dp.model_ready(name, version)
            return Reply(200, tfserving.model_status(dp.settings.model_version, ready))
        if verb is None and tail == ["metadata"]:
            _expect(method, "GET")
            metadata = dp.model_metadata(name, version)
            return Reply(200, tfserving.model_metadata(name, dp.settings.model_version, metadata))
        if verb == "predict" and not tail:
            _expect(method, "POST")
            return await self._infer(exchange, name, version, tf_serving=True)
        if verb in ("classify", "regress") and not tail:
            raise ModelNotFound(f":{verb} is not served; use :predict")
        raise ModelNotFound(f"no route for {method} /v1/{'/'.join(parts)}")


class RestApp:
    """The routes as an ASGI application (uvicorn, or any ASGI server)."""

    def __init__(self, core: RestCore) -> None:
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self.core.handle(_AsgiExchange(scope, receive))
        if reply is None:
            return  # the client left: there is nobody to answer
        headers = [
            (b"content-type", reply.content_type),
            (b"content-length", str(len(reply.body)).encode()),
        ]
        if reply.extra:
            headers.extend(reply.extra)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _AsgiExchange(Exchange):
    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._scope = scope
        self._receive = receive
        self.method = scope["method"]
        self.path = scope["path"]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self._scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    async def body(self, limit: int) -> bytes:
        declared = self.header(b"content-length")
        if declared is not None and (refusal := declared_too_large(declared, limit)):
            raise refusal
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise grown_too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def on_leave(self, callback: Callable[[], None]) -> Callable[[], None]:
        # uvicorn does not cancel a handler whose client left; its `receive` answers
        # `http.disconnect` once the body is read. One small task per request watches it.
        async def watch() -> None:
            while (await self._receive())["type"] != "http.disconnect":
                pass
            callback()

        watcher = asyncio.get_running_loop().create_task(watch())

        def stop() -> None:
            watcher.cancel()

        return stop


def _header_length(exchange: Exchange) -> int | None:
    raw = exchange.header(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("Inference-Header-Content-Length is not an integer") from None


async def _unless_client_leaves(
    work: Awaitable[InferenceResponse], exchange: Exchange
) -> InferenceResponse | None:
    """Await `work`, unless the client disconnects first: then the handler is cancelled (a
    request still queued for the model never runs) and None comes back. Only where a request
    can wait (DataPlane.may_wait)."""
    handler = asyncio.current_task()
    assert handler is not None
    left = False

    def leave() -> None:
        nonlocal left
        left = True
        handler.cancel()

    stop_watching = exchange.on_leave(leave)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise
        handler.uncancel()  # our own cancellation, handled here: nobody above asked for it
        return None
    finally:
        stop_watching()


def _requested_deadline(exchange: Exchange) -> float | None:
    """The client's own deadline in seconds (DEADLINE_HEADER, milliseconds), if it sent one."""
    raw = exchange.header(DEADLINE_HEADER)
    if raw is None:
        return None
    try:
        ms = float(raw)
    except ValueError:
        raise BadRequest(f"{DEADLINE_HEADER.decode()} is not a number of milliseconds") from None
    if not ms > 0:
        raise BadRequest(f"{DEADLINE_HEADER.decode()} must be a positive number of milliseconds")
    return ms / 1000.0


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise _MethodNotAllowed(f"method {method} not allowed here; use {allowed}")
