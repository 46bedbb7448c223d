"""Validation and calibration data: `.npz` files checked against the signature, or synthetic."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelship_runtime.build.errors import DatasetError
from modelship_runtime.build.signature import Signature, TensorSpec

INPUT_KEYS = ("x", "X", "inputs", "input", "data")
LABEL_KEYS = ("y", "labels", "label", "targets", "target")
SYNTHETIC_ROWS = 256


@dataclass(frozen=True)
class Dataset:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    origin: str  # a URI, or "synthetic"

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def batch(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {name: array[start:stop] for name, array in self.inputs.items()}


def _conform(origin: str, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    shape = list(array.shape)
    if len(shape) != len(spec.shape):
        raise DatasetError(
            f"{origin}: input {spec.name!r} has shape {tuple(shape)} but the model expects "
            f"{_show(spec.shape)} (rank {len(shape)} != {len(spec.shape)})"
        )
    for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if want >= 0 and got != want:
            raise DatasetError(
                f"{origin}: input {spec.name!r} has shape {tuple(shape)} but the model expects "
                f"{_show(spec.shape)} (axis {axis}: {got} != {want})"
            )
    dtype = spec.numpy_dtype()
    if array.dtype == dtype:
        return array
    if not np.can_cast(array.dtype, dtype, casting="same_kind") and not (
        array.dtype.kind in "iub" and dtype.kind == "f"
    ):
        raise DatasetError(
            f"{origin}: input {spec.name!r} is {array.dtype}, the model expects {spec.datatype}"
        )
    return array.astype(dtype)


def _show(shape: list[int]) -> str:
    return "(" + ", ".join("N" if d < 0 else str(d) for d in shape) + ")"


def load_dataset(
    path: Path, origin: str, signature: Signature, *, need_labels: bool = False
) -> Dataset:
    """Read an `.npz` (never unpickling), map arrays to the signature and check their shapes."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(
            f"{origin}: not a readable .npz file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"{origin}: is a single .npy array, expected an .npz with inputs and labels"
        )
    with archive:
        try:
            arrays = {key: archive[key] for key in archive.files}
        except ValueError as exc:
            raise DatasetError(
                f"{origin}: holds object arrays, which are not loaded (pickle)"
            ) from exc
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.name in arrays:
            inputs[spec.name] = arrays[spec.name]
        elif len(signature.inputs) == 1 and (
            key := next((k for k in INPUT_KEYS if k in arrays), None)
        ):
            inputs[spec.name] = arrays[key]
        else:
            raise DatasetError(
                f"{origin}: no array for input {spec.name!r} (has {sorted(arrays)}; "
                f"name arrays after the inputs, or use 'x' for a single input)"
            )
        inputs[spec.name] = _conform(origin, spec, inputs[spec.name])
    label_key = next((k for k in LABEL_KEYS if k in arrays and k not in inputs), None)
    labels = arrays[label_key] if label_key else None
    if need_labels and labels is None:
        raise DatasetError(f"{origin}: no labels (an array named one of {', '.join(LABEL_KEYS)})")
    rows = {array.shape[0] for array in inputs.values()}
    if labels is not None:
        rows.add(labels.shape[0])
    if len(rows) != 1:
        raise DatasetError(
            f"{origin}: inputs and labels have different numbers of rows {sorted(rows)}"
        )
    if 0 in rows:
        raise DatasetError(f"{origin}: is empty")
    return Dataset(inputs=inputs, labels=labels, origin=origin)


def synthetic_dataset(signature: Signature, rows: int = SYNTHETIC_ROWS, seed: int = 0) -> Dataset:
    """Inputs drawn from the signature: agreement with the original is all that can be checked."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = [rows] + [d if d > 0 else 1 for d in spec.shape[1:]]
        dtype = spec.numpy_dtype()
        if dtype.kind == "f":
            inputs[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            inputs[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise DatasetError(
                f"input {spec.name!r} is {spec.datatype}: cannot generate inputs for it; "
                f"give --validation-data"
            )
    return Dataset(inputs=inputs, labels=None, origin="synthetic")
