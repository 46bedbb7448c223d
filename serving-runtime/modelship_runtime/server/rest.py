"""The REST front end: a bare ASGI application routing V2 paths to the data plane."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
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


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, exc: InferenceError) -> None:
    extra = None
    if isinstance(exc, Overloaded):
        extra = [(b"retry-after", str(exc.retry_after_s).encode())]
    await _respond(send, exc.status, orjson.dumps({"error": exc.message}), extra=extra)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class RestApp:
    """ASGI callable; no framework, because every microsecond here is per request."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except InferenceError as exc:
            await _error(send, exc)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _error(send, InferenceError(f"internal error: {type(exc).__name__}: {exc}"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BadRequest("Content-Length is not an integer") from None
            if length > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"request body of {length} bytes exceeds the limit of {self.max_body_bytes}"
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLarge(
                        f"request body exceeds the limit of {self.max_body_bytes} bytes"
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        dp = self.dataplane
        if parts[:1] == ["metrics"] and len(parts) == 1:
            _expect(method, "GET")
            await _respond(send, 200, dp.metrics.render(), dp.metrics.content_type.encode())
            return
        if parts[:1] == ["v1"]:
            await self._tf_serving(scope, receive, send, method, parts[1:])
            return
        if not parts or parts[0] != "v2":
            raise ModelNotFound(f"no route for {method} {path}")
        rest = parts[1:]
        if not rest:
            _expect(method, "GET")
            await _respond(send, 200, orjson.dumps(dp.server_metadata()))
            return
        if rest[0] == "health" and len(rest) == 2 and rest[1] in ("live", "ready"):
            _expect(method, "GET")
            ok = dp.live if rest[1] == "live" else dp.ready
            await _respond(send, 200 if ok else 503, b"")
            return
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
            await _respond(send, 200, orjson.dumps(dp.model_metadata(name, version)))
        elif tail == ["ready"]:
            _expect(method, "GET")
            await _respond(send, 200 if dp.model_ready(name, version) else 503, b"")
        elif tail == ["infer"]:
            _expect(method, "POST")
            await self._infer(scope, receive, send, name, version)
        elif tail == ["feedback"]:
            _expect(method, "POST")
            body = await self._body(scope, receive)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"feedback body is not valid JSON: {exc}") from None
            result = dp.feedback(name, version, doc)
            await _respond(send, 200, orjson.dumps(result.as_dict()))
        else:
            raise ModelNotFound(f"no route for {method} {path}")

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        version: str | None,
        *,
        tf_serving: bool = False,
    ) -> None:
        """One inference, in the Open Inference Protocol or (tf_serving) TF Serving's
        `:predict`; both go through the same data plane."""
        dp = self.dataplane
        started = time.perf_counter()
        try:
            try:
                body = await self._body(scope, receive)
                if tf_serving:
                    predict = tfserving.decode_predict(
                        body, dp.model_metadata(name, version)["inputs"]
                    )
                    request = predict.request
                else:
                    request = decode_request(body, _header_length(scope))
                requested = _requested_deadline(scope)
            except InferenceError as exc:
                dp.count_failure(exc)
                raise
            deadline = dp.deadline(started, requested)
            if dp.may_wait:
                response = await _unless_client_leaves(
                    dp.infer(name, version, request, deadline), receive
                )
                if response is None:
                    dp.metrics.abandoned.inc()
                    return
            else:
                # Inline: nothing to wait for, so nothing to watch.
                response = await dp.infer(name, version, request, deadline)
            if tf_serving:
                await _respond(send, 200, tfserving.encode_predict(response, predict.form))
                return
            payload, json_length = encode_response(response, request)
            if json_length is None:
                await _respond(send, 200, payload)
            else:
                length = [(HEADER_LENGTH, str(json_length).encode())]
                await _respond(send, 200, payload, OCTET, length)
        finally:
            dp.observe_request(started)

    async def _tf_serving(
        self, scope: Scope, receive: Receive, send: Send, method: str, parts: list[str]
    ) -> None:
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
            await _respond(send, 200, tfserving.model_status(dp.settings.model_version, ready))
        elif verb is None and tail == ["metadata"]:
            _expect(method, "GET")
            metadata = dp.model_metadata(name, version)
            body = tfserving.model_metadata(name, dp.settings.model_version, metadata)
            await _respond(send, 200, body)
        elif verb == "predict" and not tail:
            _expect(method, "POST")
            await self._infer(scope, receive, send, name, version, tf_serving=True)
        elif verb in ("classify", "regress") and not tail:
            raise ModelNotFound(f":{verb} is not served; use :predict")
        else:
            raise ModelNotFound(f"no route for {method} /v1/{'/'.join(parts)}")


def _header_length(scope: Scope) -> int | None:
    raw = _header(scope, HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("Inference-Header-Content-Length is not an integer") from None


async def _unless_client_leaves(
    work: Awaitable[InferenceResponse], receive: Receive
) -> InferenceResponse | None:
    """Await `work`, unless the client disconnects first: then the handler is cancelled (a
    request still queued for the model never runs) and None comes back. uvicorn does not cancel a
    handler whose client left; its `receive` answers `http.disconnect` once the body is read.
    One small task per request, and only where a request can wait (DataPlane.may_wait)."""
    handler = asyncio.current_task()
    assert handler is not None
    left = False

    async def watch() -> None:
        nonlocal left
        while (await receive())["type"] != "http.disconnect":
            pass
        left = True
        handler.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise
        handler.uncancel()  # our own cancellation, handled here: nobody above asked for it
        return None
    finally:
        watcher.cancel()


def _requested_deadline(scope: Scope) -> float | None:
    """The client's own deadline in seconds (DEADLINE_HEADER, milliseconds), if it sent one."""
    raw = _header(scope, DEADLINE_HEADER)
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
