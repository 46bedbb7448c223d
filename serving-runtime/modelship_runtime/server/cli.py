"""The `modelship-runtime serve` command line: parse flags into settings and run the server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from modelship_runtime.server.settings import ServerSettings
from modelship_runtime.server.tokens import KeyFileError, read_key


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelship-runtime serve",
        description="Serve an ONNX model over the Open Inference Protocol (REST and gRPC).",
    )
    p.add_argument("--model", required=True, help=".onnx file or a directory written by `build`")
    p.add_argument("--name", required=True, help="model name in the V2 paths")
    p.add_argument("--version", default="1", help="model version reported and accepted")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--grpc-port", type=int, default=8081, help="-1 turns gRPC off")
    p.add_argument(
        "--http-server",
        choices=["modelship", "uvicorn"],
        default="modelship",
        help="HTTP/1.1 front end: the runtime's own (httptools, no ASGI) or uvicorn",
    )
    p.add_argument(
        "--keep-alive-s",
        type=float,
        default=5.0,
        help="idle keep-alive connections close after this long (0: never)",
    )
    p.add_argument("--max-batch-size", type=int, default=0, help="0 or 1: no batching")
    p.add_argument("--max-delay-ms", type=float, default=0.0, help="0: no batching")
    p.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: CPU limit)"
    )
    p.add_argument("--inter-op-threads", type=int, default=1)
    p.add_argument(
        "--graph-optimization", choices=["none", "basic", "extended", "all"], default="all"
    )
    p.add_argument(
        "--execution-providers",
        default="CPUExecutionProvider",
        help="comma-separated ONNX Runtime providers, in order of preference",
    )
    p.add_argument("--warmup-runs", type=int, default=3)
    p.add_argument(
        "--execution",
        choices=["auto", "inline", "thread"],
        default="auto",
        help="run ONNX Runtime on the event loop or a worker thread (auto: by warm-up time)",
    )
    p.add_argument("--inline-threshold-ms", type=float, default=1.0)
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024)
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=128,
        help="requests admitted at once, running and queued; more get 503 with Retry-After",
    )
    p.add_argument(
        "--deadline-ms",
        type=float,
        default=30_000.0,
        help="a request that cannot start within this long gets 503 and never runs",
    )
    p.add_argument("--retry-after-s", type=int, default=1, help="Retry-After of those 503s")
    p.add_argument("--feedback-max-entries", type=int, default=50_000)
    p.add_argument(
        "--feedback-max-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="estimated memory of the predictions held for labels; the oldest go first",
    )
    p.add_argument("--feedback-retention-s", type=float, default=3600.0)
    p.add_argument("--feedback-output", default=None, help="output compared with labels")
    p.add_argument(
        "--feedback-task", choices=["auto", "classification", "regression"], default="auto"
    )
    p.add_argument(
        "--feedback-key-file",
        default=None,
        help="raw key (>= 16 bytes) signing prediction tokens; off: labels match by id only",
    )
    p.add_argument("--feedback-replay-entries", type=int, default=100_000)
    p.add_argument("--drain-delay-s", type=float, default=0.0)
    p.add_argument("--drain-timeout-s", type=float, default=30.0)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    return p


def settings_from_args(argv: list[str]) -> ServerSettings:
    """Parse `argv` into settings; argparse exits 2 on unknown flags, pydantic errors raise."""
    a = _parser().parse_args(argv)
    return ServerSettings(
        model_path=Path(a.model),
        model_name=a.name,
        model_version=a.version,
        host=a.host,
        http_port=a.http_port,
        grpc_port=None if a.grpc_port < 0 else a.grpc_port,
        http_server=a.http_server,
        keep_alive_s=a.keep_alive_s,
        max_batch_size=a.max_batch_size,
        max_delay_ms=a.max_delay_ms,
        threads=a.threads,
        inter_op_threads=a.inter_op_threads,
        graph_optimization=a.graph_optimization,
        execution_providers=tuple(p for p in a.execution_providers.split(",") if p),
        warmup_runs=a.warmup_runs,
        execution=a.execution,
        inline_threshold_ms=a.inline_threshold_ms,
        max_body_bytes=a.max_body_bytes,
        max_in_flight=a.max_in_flight,
        deadline_ms=a.deadline_ms,
        retry_after_s=a.retry_after_s,
        feedback_max_entries=a.feedback_max_entries,
        feedback_max_bytes=a.feedback_max_bytes,
        feedback_retention_s=a.feedback_retention_s,
        feedback_output=a.feedback_output,
        feedback_task=a.feedback_task,
        feedback_key_file=None if a.feedback_key_file is None else Path(a.feedback_key_file),
        feedback_replay_entries=a.feedback_replay_entries,
        drain_delay_s=a.drain_delay_s,
        drain_timeout_s=a.drain_timeout_s,
        log_level=a.log_level,
    )


def main(argv: list[str]) -> int:
    try:
        settings = settings_from_args(argv)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        what = f"invalid {where}: " if where else ""  # model-wide checks name their flags
        print(f"modelship-runtime serve: {what}{first['msg']}", file=sys.stderr)
        return 2
    if settings.feedback_key_file is not None:
        try:
            read_key(settings.feedback_key_file)
        except KeyFileError as exc:
            print(f"modelship-runtime serve: {exc}", file=sys.stderr)
            return 2
    if not settings.model_path.exists():
        print(
            f"modelship-runtime serve: model path {str(settings.model_path)!r} does not exist",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from modelship_runtime.server.lifecycle import serve  # noqa: PLC0415 - keeps --help fast

    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(serve(settings))
    return uvloop.run(serve(settings))
