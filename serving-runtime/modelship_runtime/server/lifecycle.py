"""Process lifecycle: start the front ends, load and warm the model, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from modelship_runtime.server.artifact import resolve_model_file, served_variant
from modelship_runtime.server.cpu import available_cpus
from modelship_runtime.server.dataplane import DataPlane
from modelship_runtime.server.grpc_frontend import build_grpc_server
from modelship_runtime.server.heap import settle_after_load
from modelship_runtime.server.http1 import HttpFrontEnd
from modelship_runtime.server.metrics import RuntimeMetrics
from modelship_runtime.server.model import OnnxModel
from modelship_runtime.server.rest import RestApp, RestCore
from modelship_runtime.server.settings import ServerSettings
from modelship_runtime.server.tokens import read_key

log = logging.getLogger("modelship_runtime.server")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: we own SIGTERM so that readiness drops first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app: RestApp, settings: ServerSettings) -> _Uvicorn:
    # uvicorn counts whole seconds, and 0 would close at once: 0 (never) is a day there.
    keep_alive = max(1, round(settings.keep_alive_s)) if settings.keep_alive_s else 86400
    return _Uvicorn(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.http_port,
            loop="none",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level=settings.log_level,
            timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
            timeout_keep_alive=keep_alive,
            server_header=False,
        )
    )


def load_model(settings: ServerSettings) -> OnnxModel:
    """Open the session with the thread count the container may really use, and warm it up."""
    path = resolve_model_file(settings.model_path)
    threads = settings.threads or available_cpus()
    started = time.perf_counter()
    model = OnnxModel(
        path,
        intra_op_threads=threads,
        inter_op_threads=settings.inter_op_threads,
        graph_optimization=settings.graph_optimization,
        execution_providers=settings.execution_providers,
    )
    model.warm_run_s = model.warm_up(max(settings.warmup_runs, 1))
    log.info(
        "loaded %s (%d intra-op threads, providers %s, batchable=%s, warm run %.3f ms) in %.3fs",
        path,
        threads,
        ",".join(model.providers),
        model.batchable,
        model.warm_run_s * 1e3,
        time.perf_counter() - started,
    )
    return model


async def serve(settings: ServerSettings) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    loop = asyncio.get_running_loop()
    metrics = RuntimeMetrics(
        settings.model_name, settings.model_version, served_variant(settings.model_path)
    )
    key = None if settings.feedback_key_file is None else read_key(settings.feedback_key_file)
    dataplane = DataPlane(settings, metrics, key)

    core = RestCore(dataplane, settings.max_body_bytes)
    front: HttpFrontEnd | None = None
    uvicorn_server: _Uvicorn | None = None
    http_task: asyncio.Future[Any]
    if settings.http_server == "modelship":
        front = HttpFrontEnd(core, keep_alive_s=settings.keep_alive_s)
        try:
            await front.start(settings.host, settings.http_port)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", settings.host, settings.http_port, exc)
            return 1
        http_task = loop.create_future()  # our own front end ends only at shutdown
    else:
        uvicorn_server = _uvicorn(RestApp(core), settings)
        http_task = asyncio.ensure_future(uvicorn_server.serve())
    grpc_server = None
    if settings.grpc_port is not None:
        grpc_server = build_grpc_server(dataplane, settings.max_body_bytes)
        grpc_server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
        await grpc_server.start()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def load() -> None:
        dataplane.attach(await loop.run_in_executor(None, load_model, settings))
        settle_after_load()

    load_task = asyncio.ensure_future(load())
    stop_task = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {load_task, stop_task, http_task}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if load_task in done:
        try:
            load_task.result()
            log.info("model %r version %r ready", settings.model_name, settings.model_version)
        except Exception as exc:
            log.error("cannot serve the model: %s", exc)
            code = 1
            stop.set()
    if http_task in done and not stop.is_set():
        log.error("the HTTP server stopped: %s", http_task.exception())
        code = 1
        stop.set()
    await stop.wait()

    log.info("draining: readiness is false, waiting for in-flight requests")
    dataplane.start_draining()
    if settings.drain_delay_s:
        await asyncio.sleep(settings.drain_delay_s)
    if grpc_server is not None:
        await grpc_server.stop(settings.drain_timeout_s)
    if front is not None:
        await front.shutdown(settings.drain_timeout_s)
    if uvicorn_server is not None:
        uvicorn_server.should_exit = True
        with contextlib.suppress(Exception):
            await http_task
    await dataplane.wait_idle(settings.drain_timeout_s)
    await dataplane.close()
    log.info("stopped")
    return code
