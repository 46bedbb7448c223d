"""What is refused before any loader runs: unsafe formats, empty files; sniffing by content."""

from __future__ import annotations

import gzip
import pickle
import tarfile
import zipfile
from pathlib import Path

import pytest
from modelship_runtime.build.conversion import convert_model, sniff
from modelship_runtime.build.errors import ConversionError, UnsafeFormatError


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickles_are_refused_without_opt_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UnsafeFormatError, match="--allow-unsafe-formats"):
        convert_model("sklearn", path, signature=None, allow_unsafe=False)
    assert "must never run" not in capsys.readouterr().out


def test_torchscript_is_recognised_as_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/code/__torch__.py", "def forward(self): ...")
        archive.writestr("model/constants.pkl", b"\x80\x02N.")
    assert sniff(path) == "torchscript"
    with pytest.raises(UnsafeFormatError, match="torchscript"):
        convert_model("pytorch", path, signature=None, allow_unsafe=False)


def test_empty_source(tmp_path: Path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ConversionError, match="source file is empty"):
        convert_model("onnx", tmp_path / "empty.onnx", signature=None, allow_unsafe=False)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x80\x04\x95", "pickle"),
        (b"tree\nversion=v4", "lightgbm-text"),
        (b'{"learner"', "json-or-ubjson"),
    ],
)
def test_sniff(tmp_path: Path, head: bytes, kind: str) -> None:
    (tmp_path / "f").write_bytes(head)
    assert sniff(tmp_path / "f") == kind


def _tar(path: Path, mode: str) -> Path:
    member = path.parent / "saved_model.pb"
    member.write_bytes(b"\x08\x01")
    with tarfile.open(path, mode) as archive:
        archive.add(member, arcname="m/saved_model.pb")
    return path


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_sniff_tar_archives_of_any_compression(tmp_path: Path, mode: str) -> None:
    assert sniff(_tar(tmp_path / "m.tar", mode)) == "tar"


def test_sniff_a_gzipped_pickle_is_still_joblib(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(pickle.dumps({"a": 1})))
    assert sniff(path) == "joblib"


@pytest.mark.parametrize(
    ("members", "kind"),
    [
        (["saved/saved_model.pb", "saved/variables/variables.index"], "savedmodel-zip"),
        (["config.json", "metadata.json", "model.weights.h5"], "keras-zip"),
    ],
)
def test_sniff_zips_of_tensorflow_models(tmp_path: Path, members: list[str], kind: str) -> None:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            archive.writestr(name, b"{}")
    assert sniff(path) == kind


def test_sniff_hdf5(tmp_path: Path) -> None:
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    assert sniff(tmp_path / "m.h5") == "hdf5"
