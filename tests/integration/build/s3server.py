"""A real S3-compatible server (MinIO, built by hack/build-s3.sh) on 127.0.0.1, temporary data."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
ACCESS_KEY = "modelship-test"
SECRET_KEY = "modelship-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def minio_binary() -> Path:
    """Build (or find cached) MinIO; a cold build takes minutes and says so on stderr."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "build-s3.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"hack/build-s3.sh failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def _live(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def running_minio(data_dir: Path) -> Iterator[S3Server]:
    binary = minio_binary()
    port, console = free_port(), free_port()
    env = dict(os.environ, MINIO_ROOT_USER=ACCESS_KEY, MINIO_ROOT_PASSWORD=SECRET_KEY)
    env.pop("MINIO_VOLUMES", None)
    log = (data_dir.parent / "minio.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            "server",
            "--quiet",
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{console}",
            str(data_dir),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is not None or _live(endpoint),
            timeout=60,
            what=f"MinIO at {endpoint}",
        )
        if process.poll() is not None:
            raise RuntimeError(f"MinIO exited with {process.returncode}; see {log.name}")
        yield S3Server(endpoint, ACCESS_KEY, SECRET_KEY)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
