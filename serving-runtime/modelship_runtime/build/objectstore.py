"""Object store locations and clients: s3:// (any S3-compatible store) and gs:// (XML API)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from modelship_runtime.build.errors import BuildError

# A Kubernetes Secret mounted as a volume shows each key as a file; these are the keys we read.
CREDENTIAL_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "GCS_ACCESS_KEY_ID",
    "GCS_SECRET_ACCESS_KEY",
    "GCS_ENDPOINT_URL",
)
CREDENTIALS_DIR_ENV = "MODELSHIP_CREDENTIALS_DIR"
GCS_DEFAULT_ENDPOINT = "https://storage.googleapis.com"


@dataclass(frozen=True)
class ObjectLocation:
    scheme: str  # "s3" or "gs"
    bucket: str
    key: str

    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def child(self, name: str) -> ObjectLocation:
        prefix = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return ObjectLocation(self.scheme, self.bucket, prefix + name)


def parse_object_uri(uri: str) -> ObjectLocation:
    parsed = urlparse(uri)
    if parsed.scheme not in {"s3", "gs"}:
        raise BuildError(f"{uri!r} is not an s3:// or gs:// URI")
    if not parsed.netloc:
        raise BuildError(f"{uri!r} names no bucket")
    return ObjectLocation(parsed.scheme, parsed.netloc, parsed.path.lstrip("/"))


def credentials_environment() -> dict[str, str]:
    """The environment, overlaid by the files of a mounted credentials Secret when one is named."""
    env = {k: v for k, v in os.environ.items() if k in CREDENTIAL_KEYS and v}
    mounted = os.environ.get(CREDENTIALS_DIR_ENV)
    if mounted:
        directory = Path(mounted)
        if not directory.is_dir():
            raise BuildError(f"{CREDENTIALS_DIR_ENV}={mounted} is not a directory")
        for key in CREDENTIAL_KEYS:
            path = directory / key
            if path.is_file():
                env[key] = path.read_text().strip()
    return env


def make_client(scheme: str, *, timeout: float, attempts: int = 1) -> Any:
    """A boto3 S3 client for `scheme`; fetching retries itself, so by default boto3 tries once."""

    env = credentials_environment()
    options: dict[str, Any] = {
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "retries": {"total_max_attempts": attempts, "mode": "standard"},
    }
    if scheme == "gs":
        # GCS speaks the S3 XML API with HMAC keys; without keys, only public objects are readable.
        endpoint: str | None = env.get("GCS_ENDPOINT_URL", GCS_DEFAULT_ENDPOINT)
        key_id, secret = env.get("GCS_ACCESS_KEY_ID"), env.get("GCS_SECRET_ACCESS_KEY")
        token = None
        region = "auto"
        if not (key_id and secret):
            options["signature_version"] = UNSIGNED
    else:
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        token = env.get("AWS_SESSION_TOKEN")
        region = env.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if endpoint:
        # Self-hosted stores (MinIO, Ceph) rarely have wildcard DNS for virtual-hosted buckets.
        options["s3"] = {"addressing_style": "path"}
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(**options),
    )


def is_dns_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        if "Name or service not known" in str(seen) or "nodename nor servname" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
