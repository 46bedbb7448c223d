"""Fetching a finished artifact: one model file, or a published build (manifest + its model)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from modelship_runtime.build.errors import FetchError
from modelship_runtime.build.fetching import RetryPolicy, fetch_file, local_path_of
from modelship_runtime.build.manifest import MANIFEST_NAME, parse_manifest
from modelship_runtime.build.progress import Progress
from modelship_runtime.build.publishing import commit_directory


def build_base(uri: str) -> str | None:
    """The prefix of a published build this URI names, or None when it names a single file."""
    local = local_path_of(uri)
    if local is not None:
        if local.is_dir():
            return str(local) + os.sep
        return str(local.parent) + os.sep if local.name == MANIFEST_NAME else None
    path = urlparse(uri).path
    if uri.endswith("/"):
        return uri
    last = PurePosixPath(path).name
    if last == MANIFEST_NAME:
        return uri[: -len(MANIFEST_NAME)]
    # A last segment without an extension is taken as a prefix: model files always have one.
    return uri + "/" if "." not in last else None


def fetch_artifact(
    uri: str,
    output: Path,
    scratch: Path,
    *,
    sha256: str | None,
    policy: RetryPolicy,
    progress: Progress,
    model_sha256: str | None = None,
) -> list[Path]:
    """Fetch into `output`; a build arrives as its selected model file, then manifest.json last.

    `model_sha256` pins a build to the model file its build recorded: a manifest that lists
    another digest (the build was replaced or edited in the store since) is refused, as is a
    file that does not match it."""
    base = build_base(uri)
    if base is None:
        fetched = fetch_file(uri, output, sha256=sha256, policy=policy, progress=progress)
        return [fetched.path]
    manifest_file = fetch_file(
        base + MANIFEST_NAME, scratch, sha256=sha256, policy=policy, progress=progress
    )
    text = manifest_file.path.read_text()
    manifest = parse_manifest(text.encode(), base + MANIFEST_NAME)
    selected = next((v for v in manifest.variants if v.name == manifest.selected), None)
    if selected is None or not selected.file or not selected.sha256:
        raise FetchError(
            f"{base}{MANIFEST_NAME}: selected variant {manifest.selected!r} lists no file"
        )
    if "/" in selected.file or selected.file.startswith("."):
        raise FetchError(f"{base}{MANIFEST_NAME}: file name {selected.file!r} is not a plain name")
    if model_sha256 is not None and selected.sha256.lower() != model_sha256.lower():
        raise FetchError(
            f"{base}{selected.file}: the store lists sha256 {selected.sha256} but the build "
            f"recorded {model_sha256.lower()}: the artifact changed after it was built, so it is "
            "not served"
        )
    fetch_file(
        base + selected.file, scratch, sha256=selected.sha256, policy=policy, progress=progress
    )
    commit_directory(scratch, output, [selected.file], text)
    return [output / selected.file, output / MANIFEST_NAME]
