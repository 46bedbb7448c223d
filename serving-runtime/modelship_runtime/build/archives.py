"""Unpacking a model that comes as one archive (tar, compressed tar, zip), refusing anything
but plain files and folders inside the target."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from modelship_runtime.build.errors import ConversionError

# An archive is unpacked into the build's scratch space: bound what it may claim there, so a
# zip bomb fails with a message instead of filling the volume.
MAX_MEMBERS = 100_000
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One entry of an archive, as the unpacking sees it."""

    name: str
    kind: str  # "file", "dir", or what else the archive says it is ("symlink", "device", ...)
    size: int


def safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive's own root ("./")."""
    if "\\" in name or "\x00" in name:
        raise ConversionError(f"archive member {name!r} has a backslash or NUL in its name")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ConversionError(f"archive member {name!r} is an absolute path")
    parts = [p for p in path.parts if p not in {"", "."}]
    if ".." in parts:
        raise ConversionError(f"archive member {name!r} points outside the archive (..)")
    return PurePosixPath(*parts) if parts else None


def check_members(members: list[Member], max_bytes: int) -> None:
    """Refuse links, devices and oversized archives before anything is written."""
    if len(members) > MAX_MEMBERS:
        raise ConversionError(f"archive has {len(members)} members (at most {MAX_MEMBERS})")
    total = 0
    for member in members:
        if member.kind not in {"file", "dir"}:
            raise ConversionError(
                f"archive member {member.name!r} is a {member.kind}; only files and folders "
                "are unpacked"
            )
        safe_member_path(member.name)
        total += member.size
    if total > max_bytes:
        raise ConversionError(
            f"archive unpacks to {total} bytes, more than the {max_bytes} bytes allowed"
        )


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isfile():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hard link"
    return "device or fifo"


@contextmanager
def _open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r:*") as archive:
            yield archive
    except tarfile.TarError as exc:
        raise ConversionError(f"source is not a readable tar archive: {exc}") from exc


def unpack(path: Path, kind: str, into: Path, *, max_bytes: int) -> Path:
    """Unpack a "tar" or "zip" source into `into` (created), returning it."""
    into.mkdir(parents=True, exist_ok=True)
    if kind == "tar":
        with _open_tar(path) as archive:
            infos = archive.getmembers()
            check_members([Member(i.name, _tar_kind(i), i.size) for i in infos], max_bytes)
            for info in infos:
                _write(into, info.name, info.isdir(), partial(archive.extractfile, info))
        return into
    if kind in {"zip", "savedmodel-zip"}:
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
                check_members(
                    [Member(e.filename, _zip_kind(e), e.file_size) for e in entries], max_bytes
                )
                for zinfo in entries:
                    _write(into, zinfo.filename, zinfo.is_dir(), partial(archive.open, zinfo))
        except zipfile.BadZipFile as exc:
            raise ConversionError(f"source is not a readable zip archive: {exc}") from exc
        return into
    raise ConversionError(f"source is not an archive (it looks like {kind})")


def _zip_kind(info: zipfile.ZipInfo) -> str:
    # The upper 16 bits of external_attr carry the Unix mode when the archive was made on Unix.
    mode = info.external_attr >> 16
    if mode and (mode & 0o170000) == 0o120000:
        return "symlink"
    return "dir" if info.is_dir() else "file"


def _write(
    root: Path, name: str, is_dir: bool, open_member: Callable[[], IO[bytes] | None]
) -> None:
    relative = safe_member_path(name)
    if relative is None:
        return
    target = root.joinpath(*relative.parts)
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = open_member()
    if source is None:
        raise ConversionError(f"archive member {name!r} cannot be read")
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def find_saved_model(root: Path) -> Path:
    """The one folder under `root` that holds a saved_model.pb (the archive's top or below)."""
    found = sorted(p.parent for p in root.rglob("saved_model.pb"))
    if not found:
        raise ConversionError(
            "the archive holds no saved_model.pb: --format tensorflow expects a SavedModel "
            "folder packed as tar, tar.gz or zip"
        )
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(root)) or "." for p in found[:3])
        raise ConversionError(f"the archive holds {len(found)} SavedModels ({names}); pack one")
    return found[0]
