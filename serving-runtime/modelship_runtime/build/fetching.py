"""Fetching artifacts by URI (file, mounted path, http(s), s3, gs): streamed, hashed, retried."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import unquote, urlparse

from botocore import exceptions as bx
from pydantic import BaseModel, ConfigDict, Field

from modelship_runtime.build.errors import FetchError
from modelship_runtime.build.objectstore import is_dns_failure, make_client, parse_object_uri
from modelship_runtime.build.progress import Progress, SilentProgress, Stage

CHUNK = 1 << 20
T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How hard to try: transient failures (5xx, resets, timeouts, DNS) back off exponentially."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=4, ge=1)
    initial_backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=8.0, ge=0)
    timeout: float = Field(default=30.0, gt=0, description="seconds per connect or read")

    @classmethod
    def from_env(cls) -> RetryPolicy:
        values: dict[str, float] = {}
        for env, field in (
            ("MODELSHIP_FETCH_ATTEMPTS", "attempts"),
            ("MODELSHIP_FETCH_BACKOFF", "initial_backoff"),
            ("MODELSHIP_FETCH_TIMEOUT", "timeout"),
        ):
            raw = os.environ.get(env)
            if raw:
                try:
                    values[field] = float(raw)
                except ValueError:
                    raise FetchError(f"{env}={raw!r} is not a number") from None
        if "attempts" in values:
            values["attempts"] = int(values["attempts"])
        return cls.model_validate(values)


@dataclass(frozen=True)
class FetchedFile:
    uri: str
    path: Path
    sha256: str
    size: int


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Transient(Exception):
    """A failure worth retrying; its message is the one-line cause if retries run out."""


def _with_retries(uri: str, policy: RetryPolicy, attempt: Callable[[], T], progress: Progress) -> T:
    delay = policy.initial_backoff
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except _Transient as exc:
            if number == policy.attempts:
                suffix = f" (after {policy.attempts} attempts)" if policy.attempts > 1 else ""
                raise FetchError(f"{exc}{suffix}") from exc
            progress.log("fetch-retry", uri=uri, attempt=number, error=str(exc), backoff=delay)
            time.sleep(delay)
            delay = min(policy.max_backoff, delay * 2 if delay else 0)
    raise AssertionError("unreachable")


def _stream(chunks: Iterator[bytes], out: _Writer, stage: Stage) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        stage.advance(len(chunk))
    return digest.hexdigest(), size


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_path_of(uri: str) -> Path | None:
    """The filesystem path of a file:// URI or a plain (mounted) path; None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in {"", "localhost"}:
            raise FetchError(f"{uri!r}: file:// URIs must not name a host")
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:3] == ":\\"):
        return Path(uri)
    return None


def file_name_of(uri: str) -> str:
    local = local_path_of(uri)
    name = local.name if local is not None else PurePosixPath(unquote(urlparse(uri).path)).name
    return name or "artifact"


# --- per-scheme downloads: each writes to `out` and maps failures to one clear line -----------


def _download_http(
    uri: str, out: IO[bytes], policy: RetryPolicy, stage_of: Callable[[int | None], Any]
) -> tuple[str, int]:
    request = urllib.request.Request(uri, headers={"User-Agent": "modelship-build/0.1"})
    host = urlparse(uri).netloc
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            length = response.headers.get("Content-Length")
            with stage_of(int(length) if length else None) as stage:
                return _stream(iter(lambda: response.read(CHUNK), b""), out, stage)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(f"{uri}: not found (HTTP 404)") from exc
        if exc.code in {401, 403}:
            raise FetchError(f"{uri}: access denied (HTTP {exc.code})") from exc
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"{uri}: server error (HTTP {exc.code})") from exc
        raise FetchError(f"{uri}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror) or is_dns_failure(exc):
            raise _Transient(f"{uri}: DNS lookup of {host} failed") from exc
        if isinstance(reason, TimeoutError | socket.timeout):
            raise _Transient(f"{uri}: timed out after {policy.timeout:g}s") from exc
        if isinstance(reason, ConnectionRefusedError):
            raise _Transient(f"{uri}: connection to {host} refused") from exc
        raise _Transient(f"{uri}: unreachable ({reason})") from exc
    except TimeoutError as exc:
        raise _Transient(f"{uri}: timed out after {policy.timeout:g}s") from exc
    except (ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(f"{uri}: connection failed ({type(exc).__name__})") from exc


def object_store_error(uri: str, exc: Exception, timeout: float) -> Exception:
    """Map a botocore failure to a FetchError (permanent) or a _Transient (worth retrying)."""

    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in {"NoSuchBucket"}:
            return FetchError(f"{uri}: bucket does not exist (HTTP 404 NoSuchBucket)")
        if status == 404 or code in {"NoSuchKey", "404", "NotFound"}:
            return FetchError(f"{uri}: not found (HTTP 404)")
        if status in {401, 403} or code in {
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403",
        }:
            return FetchError(f"{uri}: access denied (HTTP {status or 403} {code})")
        if (
            status == 429
            or status >= 500
            or code in {"SlowDown", "RequestTimeout", "InternalError"}
        ):
            return _Transient(f"{uri}: server error (HTTP {status} {code})")
        return FetchError(f"{uri}: object store refused the request (HTTP {status} {code})")
    if isinstance(exc, bx.NoCredentialsError):
        return FetchError(
            f"{uri}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(
        exc, bx.ConnectTimeoutError | bx.ReadTimeoutError | TimeoutError | socket.timeout
    ):
        return _Transient(f"{uri}: timed out after {timeout:g}s")
    if is_dns_failure(exc):
        host = getattr(exc, "kwargs", {}).get("endpoint_url", "the endpoint")
        return _Transient(f"{uri}: DNS lookup of {host} failed")
    if isinstance(exc, bx.EndpointConnectionError):
        return _Transient(
            f"{uri}: cannot connect to {exc.kwargs.get('endpoint_url', 'the endpoint')}"
        )
    if isinstance(exc, bx.BotoCoreError | ConnectionError):
        return _Transient(f"{uri}: connection failed ({type(exc).__name__})")
    return exc


def _download_object(
    uri: str, out: IO[bytes], policy: RetryPolicy, stage_of: Callable[[int | None], Any]
) -> tuple[str, int]:
    location = parse_object_uri(uri)
    if not location.key or location.key.endswith("/"):
        raise FetchError(f"{uri}: names a prefix, not an object")
    try:
        client = make_client(location.scheme, timeout=policy.timeout)
        response = client.get_object(Bucket=location.bucket, Key=location.key)
        with stage_of(int(response.get("ContentLength") or 0) or None) as stage:
            return _stream(response["Body"].iter_chunks(CHUNK), out, stage)
    except (FetchError, _Transient):
        raise
    except Exception as exc:
        raise object_store_error(uri, exc, policy.timeout) from exc


def _download_local(
    uri: str, path: Path, out: IO[bytes], stage_of: Callable[[int | None], Any]
) -> tuple[str, int]:
    if not path.exists():
        raise FetchError(f"{uri}: no such file")
    if not path.is_file():
        raise FetchError(f"{uri}: not a regular file")
    try:
        with path.open("rb") as handle, stage_of(path.stat().st_size) as stage:
            return _stream(iter(lambda: handle.read(CHUNK), b""), out, stage)
    except PermissionError as exc:
        raise FetchError(f"{uri}: permission denied") from exc


def verify_sha256(uri: str, actual: str, expected: str | None) -> None:
    if expected and actual.lower() != expected.strip().lower():
        raise FetchError(
            f"{uri}: sha256 mismatch: expected {expected.strip().lower()}, got {actual}"
        )


def fetch_file(
    uri: str,
    dest_dir: Path,
    *,
    sha256: str | None = None,
    name: str | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress | None = None,
    copy_local: bool = True,
) -> FetchedFile:
    """Bring one file into `dest_dir` (streamed; the file appears only once complete and verified).

    A local source is hashed in place and used where it lies unless `copy_local`.
    """
    policy = policy or RetryPolicy()
    progress = progress or SilentProgress()
    local = local_path_of(uri)
    label = f"fetch {file_name_of(uri)}"

    def stage_of(total: int | None) -> Any:
        return progress.stage(label, total=total, unit="B")

    if local is not None and not copy_local:
        if not local.is_file():
            raise FetchError(
                f"{uri}: no such file" if not local.exists() else f"{uri}: not a regular file"
            )
        with local.open("rb") as handle, stage_of(local.stat().st_size) as stage:
            digest, size = _stream(iter(lambda: handle.read(CHUNK), b""), _Discard(), stage)
        verify_sha256(uri, digest, sha256)
        return FetchedFile(uri, local, digest, size)

    scheme = urlparse(uri).scheme if local is None else "file"
    if scheme not in {"file", "http", "https", "s3", "gs"}:
        raise FetchError(f"{uri}: unsupported URI scheme {scheme!r} (file, http, https, s3, gs)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (name or file_name_of(uri))

    def attempt() -> FetchedFile:
        # Write to a temporary sibling: a half-written file is never visible under its final name.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if local is not None:
                    digest, size = _download_local(uri, local, out, stage_of)
                elif scheme in {"http", "https"}:
                    digest, size = _download_http(uri, out, policy, stage_of)
                else:
                    digest, size = _download_object(uri, out, policy, stage_of)
            verify_sha256(uri, digest, sha256)
            os.replace(tmp, target)
            return FetchedFile(uri, target, digest, size)
        finally:
            tmp.unlink(missing_ok=True)

    return _with_retries(uri, policy, attempt, progress)


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def copy_tree_file(src: Path, dst: Path) -> None:
    """Stream-copy one file (used when publishing to a directory)."""
    with src.open("rb") as reader, dst.open("wb") as writer:
        shutil.copyfileobj(reader, writer, CHUNK)
