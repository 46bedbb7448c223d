"""Resolving the model path: a file, a build directory's selected variant, or a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelship_runtime.server.artifact import ArtifactError, resolve_model_file, served_variant


def test_plain_file(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert resolve_model_file(model) == model


@pytest.mark.parametrize(
    "manifest",
    [
        {
            "selected": "int8",
            "variants": [{"name": "fp32", "file": "a.onnx"}, {"name": "int8", "file": "b.onnx"}],
        },
        {"selected": {"name": "int8", "file": "b.onnx"}},
        {
            "variants": [
                {"name": "fp32", "file": "a.onnx"},
                {"name": "int8", "file": "b.onnx", "selected": True},
            ]
        },
        {"selected": "int8", "variants": {"fp32": {"file": "a.onnx"}, "int8": {"path": "b.onnx"}}},
        {"selected": "int8", "selectedFile": "b.onnx", "variants": []},
    ],
)
def test_manifest_selects_a_variant(tmp_path: Path, manifest: dict[str, object]) -> None:
    (tmp_path / "a.onnx").write_bytes(b"a")
    (tmp_path / "b.onnx").write_bytes(b"b")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_model_file(tmp_path).name == "b.onnx"


def test_manifest_cannot_escape_the_directory(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"selected": {"file": "../../etc/passwd"}}))
    with pytest.raises(ArtifactError, match="not a file in"):
        resolve_model_file(tmp_path)


def test_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"0 \.onnx files"):
        resolve_model_file(tmp_path)
    (tmp_path / "only.onnx").write_bytes(b"x")
    assert resolve_model_file(tmp_path).name == "only.onnx"


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        resolve_model_file(tmp_path / "nope")


def test_served_variant_is_the_manifests_selection(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        '{"selected": "int8-dynamic", "selectedFile": "a.onnx"}'
    )
    assert served_variant(tmp_path) == "int8-dynamic"


def test_served_variant_of_a_plain_file_or_a_broken_manifest(tmp_path: Path) -> None:
    assert served_variant(tmp_path / "model.onnx") == "model"
    (tmp_path / "manifest.json").write_text("{not json")
    assert served_variant(tmp_path) == "model"
