"""Unpacking model archives: only plain files and folders, only inside the target, bounded."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from modelship_runtime.build import archives
from modelship_runtime.build.errors import ConversionError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("saved/saved_model.pb", PurePosixPath("saved/saved_model.pb")),
        ("./saved_model.pb", PurePosixPath("saved_model.pb")),
        ("./", None),
        ("a//b", PurePosixPath("a/b")),
    ],
)
def test_safe_member_path(name: str, expected: PurePosixPath | None) -> None:
    assert archives.safe_member_path(name) == expected


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("/etc/passwd", "absolute path"),
        ("../outside", r"outside the archive \(\.\.\)"),
        ("a/../../outside", r"outside the archive"),
        ("a\\..\\b", "backslash"),
    ],
)
def test_unsafe_member_names_are_refused(name: str, cause: str) -> None:
    with pytest.raises(ConversionError, match=cause):
        archives.safe_member_path(name)


@pytest.mark.parametrize(
    ("members", "cause"),
    [
        ([archives.Member("link", "symlink", 0)], "'link' is a symlink"),
        ([archives.Member("dev", "device or fifo", 0)], "is a device or fifo"),
        ([archives.Member("a", "file", 600), archives.Member("b", "file", 500)], "1100 bytes"),
    ],
)
def test_check_members_refuses(members: list[archives.Member], cause: str) -> None:
    with pytest.raises(ConversionError, match=cause):
        archives.check_members(members, max_bytes=1000)


def _tar_with(path: Path, add: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info in add:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def test_unpack_tar_writes_files_and_finds_the_saved_model(tmp_path: Path) -> None:
    pb = tarfile.TarInfo("export/1/saved_model.pb")
    pb.size = 1
    variables = tarfile.TarInfo("export/1/variables/variables.index")
    variables.size = 1
    root = archives.unpack(
        _tar_with(tmp_path / "m.tgz", [pb, variables]), "tar", tmp_path / "out", max_bytes=10
    )
    assert (root / "export/1/variables/variables.index").read_bytes() == b"x"
    assert archives.find_saved_model(root) == root / "export/1"


def test_unpack_tar_with_a_symlink_writes_nothing(tmp_path: Path) -> None:
    ok = tarfile.TarInfo("saved_model.pb")
    ok.size = 1
    link = tarfile.TarInfo("variables")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc"
    with pytest.raises(ConversionError, match="'variables' is a symlink"):
        archives.unpack(
            _tar_with(tmp_path / "m.tgz", [ok, link]), "tar", tmp_path / "out", max_bytes=10
        )
    assert list((tmp_path / "out").iterdir()) == []


def test_unpack_zip_refuses_an_escaping_name(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("saved_model.pb", b"x")
        archive.writestr("../evil", b"x")
    with pytest.raises(ConversionError, match="outside the archive"):
        archives.unpack(path, "zip", tmp_path / "out", max_bytes=10)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    ("names", "cause"),
    [
        ([], "no saved_model.pb"),
        (["a/saved_model.pb", "b/saved_model.pb"], "2 SavedModels"),
    ],
)
def test_find_saved_model_wants_exactly_one(tmp_path: Path, names: list[str], cause: str) -> None:
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ConversionError, match=cause):
        archives.find_saved_model(tmp_path)
