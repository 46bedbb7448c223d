"""Running `modelship-runtime serve` as a real subprocess on free local ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class ServerProcess:
    """A runtime subprocess; `stop()` sends SIGTERM and returns its exit code."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            return http_status(f"{self.base}/v2/health/ready", timeout=1.0) == 200

        try:
            wait_until(ready, timeout=timeout, interval=0.05, what="the runtime to become ready")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{self.log()}") from None


def serve_argv(model: Path, name: str, http_port: int, grpc_port: int, *extra: str) -> list[str]:
    """`modelship-runtime serve` on 127.0.0.1 with one intra-op thread (a gRPC port of -1
    turns gRPC off); the tests and the benchmarks start it alike."""
    return [
        sys.executable,
        "-m",
        "modelship_runtime.cli",
        "serve",
        "--model",
        str(model),
        "--name",
        name,
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--threads",
        "1",
        "--log-level",
        "warning",
        *extra,
    ]


def start_server(
    model: Path, name: str, log_dir: Path, *extra: str, wait: bool = True
) -> ServerProcess:
    """Start the server on fresh ports with one intra-op thread, and wait until it is ready."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"server-{name}-{http_port}.log"
    args = serve_argv(model, name, http_port, grpc_port, *extra)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    server = ServerProcess(process, http_port, grpc_port, log_path, args)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


@contextmanager
def served(model: Path, name: str, log_dir: Path, *extra: str) -> Iterator[ServerProcess]:
    """A started server for the block; afterwards it is stopped and must have exited cleanly."""
    server = start_server(model, name, log_dir, *extra)
    try:
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.log()
