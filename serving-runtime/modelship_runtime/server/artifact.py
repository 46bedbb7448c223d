"""Finding the ONNX file to serve: a plain `.onnx` file or a build's selected variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ArtifactError(Exception):
    """The model path does not lead to exactly one ONNX file."""


def _variant_file(variant: Any) -> str | None:
    if isinstance(variant, dict):
        for key in ("file", "path", "filename"):
            value = variant.get(key)
            if isinstance(value, str):
                return value
    return None


def _selected_from_manifest(manifest: dict[str, Any]) -> str | None:
    for key in ("selectedFile", "selected_file"):
        # `modelship-runtime build` writes the selected file next to the variant's name.
        if isinstance(manifest.get(key), str):
            return str(manifest[key])
    selected = manifest.get("selected")
    direct = _variant_file(selected)
    if direct:
        return direct
    variants = manifest.get("variants")
    if isinstance(variants, dict):
        variants = [
            {"name": name, **body} for name, body in variants.items() if isinstance(body, dict)
        ]
    if not isinstance(variants, list):
        return None
    for variant in variants:
        if not isinstance(variant, dict):
            continue
        if (isinstance(selected, str) and variant.get("name") == selected) or variant.get(
            "selected"
        ):
            return _variant_file(variant)
    return None


PLAIN_VARIANT = "model"


def served_variant(path: Path) -> str:
    """Name of the build variant `path` serves (`model` for a plain ONNX file), for metrics.

    Cheap and forgiving: metrics are labelled before the model loads, and a broken manifest is
    reported by `resolve_model_file`, not here.
    """
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return PLAIN_VARIANT
    selected = manifest.get("selected") if isinstance(manifest, dict) else None
    if isinstance(selected, dict):
        selected = selected.get("name")
    if isinstance(selected, str) and selected:
        return selected
    variants = manifest.get("variants") if isinstance(manifest, dict) else None
    for variant in variants if isinstance(variants, list) else []:
        if isinstance(variant, dict) and variant.get("selected") and variant.get("name"):
            return str(variant["name"])
    return PLAIN_VARIANT


def resolve_model_file(path: Path) -> Path:
    """Return the ONNX file to load for `path` or raise ArtifactError naming what is wrong."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ArtifactError(f"model path {str(path)!r} does not exist")
    manifest_path = path / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read {manifest_path}: {exc}") from exc
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{manifest_path} is not a JSON object")
        name = _selected_from_manifest(manifest)
        if name is None:
            raise ArtifactError(f"{manifest_path} names no selected variant with a file")
        candidate = (path / name).resolve()
        if path.resolve() not in candidate.parents or not candidate.is_file():
            raise ArtifactError(f"{manifest_path} selects {name!r}, which is not a file in {path}")
        return candidate
    onnx_files = sorted(path.glob("*.onnx"))
    if len(onnx_files) == 1:
        return onnx_files[0]
    raise ArtifactError(
        f"model directory {str(path)!r} has no manifest.json and {len(onnx_files)} .onnx files"
    )
