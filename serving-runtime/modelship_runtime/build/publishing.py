"""Atomic publishing of a finished build to a directory or object store: manifest.json last."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from modelship_runtime.build.errors import FetchError, PublishError
from modelship_runtime.build.fetching import copy_tree_file, local_path_of, object_store_error
from modelship_runtime.build.manifest import MANIFEST_NAME
from modelship_runtime.build.objectstore import make_client, parse_object_uri
from modelship_runtime.build.progress import Progress

PUBLISH_ATTEMPTS = 4
PUBLISH_TIMEOUT = 60.0


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the manifest from a non-root server
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def commit_directory(staging: Path, target: Path, files: list[str], manifest_text: str) -> None:
    """Move finished files from `staging` (same filesystem) into `target`, then the manifest.

    Model files carry their digest in their name, so an older manifest in `target` stays valid
    until the new one replaces it in one rename: readers see the old build or the new, never a mix.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        os.replace(staging / name, target / name)
    write_atomically(target / MANIFEST_NAME, manifest_text)


def publish_directory(source: Path, target: Path, files: list[str], manifest_text: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=target))
    try:
        for name in files:
            copy_tree_file(source / name, staging / name)
        commit_directory(staging, target, files, manifest_text)
    except OSError as exc:
        raise PublishError(f"cannot publish to {target}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_object_store(
    uri: str, source: Path, files: list[str], manifest_text: str, progress: Progress
) -> None:
    """Upload model files, then manifest.json; on failure, remove what this run uploaded."""
    location = parse_object_uri(uri if uri.endswith("/") else uri + "/")
    client = make_client(location.scheme, timeout=PUBLISH_TIMEOUT, attempts=PUBLISH_ATTEMPTS)
    uploaded: list[str] = []
    current = location.uri()
    try:
        for name in files:
            key = location.child(name).key
            current = location.child(name).uri()
            size = (source / name).stat().st_size
            if _exists_with_size(client, location.bucket, key, size):
                continue  # same digest in the name, same bytes: a previous build uploaded it
            with progress.stage(f"upload {name}", total=size, unit="B") as stage:
                client.upload_file(str(source / name), location.bucket, key, Callback=stage.advance)
            uploaded.append(key)
        current = location.child(MANIFEST_NAME).uri()
        client.put_object(
            Bucket=location.bucket,
            Key=location.child(MANIFEST_NAME).key,
            Body=manifest_text.encode(),
            ContentType="application/json",
        )
    except Exception as exc:
        for key in uploaded:
            try:
                client.delete_object(Bucket=location.bucket, Key=key)
            except Exception as cleanup:
                progress.log("publish-cleanup-failed", key=key, error=str(cleanup))
        mapped = object_store_error(current, exc, PUBLISH_TIMEOUT)
        raise PublishError(f"cannot publish to {uri}: {mapped}") from exc


def _exists_with_size(client: object, bucket: str, key: str, size: int) -> bool:

    try:
        head = client.head_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except ClientError:
        return False
    return int(head.get("ContentLength", -1)) == size


def publish(
    uri: str, source: Path, files: list[str], manifest_text: str, progress: Progress
) -> None:
    local = local_path_of(uri)
    if local is not None:
        publish_directory(source, local, files, manifest_text)
        return
    scheme = urlparse(uri).scheme
    if scheme not in {"s3", "gs"}:
        raise PublishError(
            f"--publish {uri}: unsupported scheme {scheme!r} (s3, gs, file or a path)"
        )
    try:
        publish_object_store(uri, source, files, manifest_text, progress)
    except FetchError as exc:
        raise PublishError(str(exc)) from exc
