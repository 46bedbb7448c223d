"""Conversion to ONNX: the converted graph, the original kept as reference, and dispatch."""

from __future__ import annotations

import importlib
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from modelship_runtime.build.errors import ConversionError, UnsafeFormatError
from modelship_runtime.build.manifest import Task
from modelship_runtime.build.signature import Signature, TensorSpec

SourceFormat = Literal["onnx", "sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "keras"]
FORMATS: tuple[SourceFormat, ...] = (
    "onnx", "sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "keras",
)  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """What a model says about a batch: class labels (classifiers) and/or numeric scores."""

    labels: np.ndarray | None
    scores: np.ndarray | None


@dataclass(frozen=True)
class Reference:
    """The original model, run in its own framework, that every variant is compared with."""

    description: str
    predict: Callable[[dict[str, np.ndarray]], Prediction]


@dataclass(frozen=True)
class OutputRoles:
    """Which ONNX outputs carry the predicted label and the scores (probabilities or values)."""

    label: str | None
    scores: str | None

    @classmethod
    def for_task(cls, outputs: list[TensorSpec], classifier: bool) -> tuple[Task, OutputRoles]:
        """The ONNX converters' convention: a classifier emits (label, probabilities)."""
        if classifier:
            return "classifier", cls(label=outputs[0].name, scores=outputs[1].name)
        return "regressor", cls(label=None, scores=outputs[0].name)

    def interpret(self, outputs: dict[str, np.ndarray]) -> Prediction:
        scores = outputs[self.scores] if self.scores else None
        if self.label:
            labels = outputs[self.label]
        elif scores is not None and scores.ndim == 2 and scores.shape[1] > 1:
            labels = np.argmax(scores, axis=1)
        else:
            labels = None
        return Prediction(
            labels=None if labels is None else np.asarray(labels).reshape(-1), scores=scores
        )


@dataclass(frozen=True)
class ConvertedModel:
    model: onnx.ModelProto
    signature: Signature
    task: Task
    roles: OutputRoles
    reference: Reference
    framework: str  # e.g. "scikit-learn 1.5.0", recorded in the manifest's tools


# Loading these runs code from the file: refused unless the spec opts in explicitly.
UNSAFE_KINDS = {"pickle", "joblib", "torchscript"}


def sniff(path: Path) -> str:
    """Guess what a file holds from its first bytes, without loading it."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head:
        return "empty"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if head[:2] == b"\x1f\x8b" and _is_tar(path):
        return "tar"  # a gzipped tar, as SavedModels are shipped (a joblib file is no tar)
    if head[:2] == b"\x1f\x8b" or (
        head[:1] == b"x" and len(head) > 1 and head[1] in b"\x01\x5e\x9c\xda"
    ):
        return "joblib"  # joblib's compressed pickles (gzip/zlib)
    if head[:4] in {b"\x04\x22\x4d\x18", b"\xfd7zX"} or head[:3] == b"BZh":
        return "tar" if _is_tar(path) else "joblib"  # lz4, xz, bz2
    if head[:4] == b"PK\x03\x04":
        return _sniff_zip(path)
    if head[:1] in {b"{", b"["}:
        return "json-or-ubjson"
    if _is_tar(path):
        return "tar"
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "lightgbm-text"
    return "unknown"


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "unknown"
    if any(n == "saved_model.pb" or n.endswith("/saved_model.pb") for n in names):
        return "savedmodel-zip"
    if "config.json" in names and "model.weights.h5" in names:
        return "keras-zip"  # Keras 3's .keras format
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(
        n.endswith("archive_format") or "serialized_exported_program" in n or "/models/" in n
        for n in names
    ):
        return "exported-program"
    if any(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _is_tar(path: Path) -> bool:
    # Reads the first header only (decompressing a few blocks of a compressed file).
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        return False


def refuse_unsafe(kind: str, fmt: str, allow_unsafe: bool) -> None:
    if kind in UNSAFE_KINDS and not allow_unsafe:
        raise UnsafeFormatError(
            f"source is a {kind} file, whose loading executes code; "
            f"pass --allow-unsafe-formats to load it (only inside the build Job)"
            + (
                ""
                if fmt not in {"xgboost", "lightgbm"}
                else f", or save the model in {fmt}'s native format instead"
            )
        )


_CONVERTERS: dict[str, str] = {
    "onnx": "modelship_runtime.build.converters.onnx_models",
    "sklearn": "modelship_runtime.build.converters.sklearn_models",
    "xgboost": "modelship_runtime.build.converters.xgboost_models",
    "lightgbm": "modelship_runtime.build.converters.lightgbm_models",
    "pytorch": "modelship_runtime.build.converters.torch_models",
    "tensorflow": "modelship_runtime.build.converters.tensorflow_models",
    "keras": "modelship_runtime.build.converters.tensorflow_models",
}


def convert_model(
    fmt: SourceFormat, path: Path, *, signature: Signature | None, allow_unsafe: bool
) -> ConvertedModel:
    """Load the source in its framework and convert it; each failure names its cause."""
    if fmt not in _CONVERTERS:
        raise ConversionError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    kind = sniff(path)
    if kind == "empty":
        raise ConversionError("source file is empty")
    refuse_unsafe(kind, fmt, allow_unsafe)
    try:
        module = importlib.import_module(_CONVERTERS[fmt])
    except ImportError as exc:
        raise ConversionError(
            f"the {fmt} converter needs {exc.name or exc}, which is not installed here "
            f"(see docs/build.md, 'Installing converters')"
        ) from exc
    converted: ConvertedModel = module.convert(fmt, path, kind=kind, signature=signature)
    try:
        onnx.checker.check_model(converted.model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"the converted {fmt} model is not valid ONNX: {first}") from exc
    return converted
