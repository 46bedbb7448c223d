"""Optimized variants: ORT offline graph optimization, INT8 (dynamic, static), FP16."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnxconverter_common import float16  # type: ignore[import-untyped]
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from modelship_runtime.build.datasets import Dataset
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.runner import GraphOptimization, make_session, session_options

Quantization = Literal["none", "dynamic-int8", "static-int8", "fp16", "auto"]

# Variant names as they appear in the manifest and status.
FP32, INT8, INT8_STATIC, FP16 = "fp32", "int8", "int8-static", "fp16"
QUANTIZATION_OF = {FP32: "none", INT8: "dynamic-int8", INT8_STATIC: "static-int8", FP16: "fp16"}

# Quantization and FP16 pay off on dense linear algebra; the ai.onnx.ml tree and linear operators
# are left as they are by both tools, so on such graphs the variant would be a copy of fp32.
COMPUTE_OPS = {
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "LSTM",
    "GRU",
    "RNN",
    "Attention",
    "EinSum",
}
CALIBRATION_ROWS = 256


@dataclass(frozen=True)
class Variant:
    name: str
    quantization: str
    path: Path | None  # None when it was skipped or failed
    reason: str | None = None  # why it was skipped or failed


def planned_variants(quantization: Quantization, has_calibration: bool) -> list[str]:
    """fp32 is always built: the baseline others are measured against, and the fallback."""
    if quantization == "none":
        return [FP32]
    if quantization == "dynamic-int8":
        return [FP32, INT8]
    if quantization == "static-int8":
        if not has_calibration:
            raise BuildError("--quantization static-int8 needs --calibration-data")
        return [FP32, INT8_STATIC]
    if quantization == "fp16":
        return [FP32, FP16]
    return [FP32, INT8, *([INT8_STATIC] if has_calibration else []), FP16]


def offline_level(level: GraphOptimization) -> GraphOptimization:
    # ORT's "all" adds layout transforms tied to the CPU it ran on; saved models stop at "extended"
    # and the server applies "all" online on the machine that serves.
    return "extended" if level == "all" else level


def optimize_graph(source: Path, target: Path, level: GraphOptimization) -> None:
    """Save the graph as ONNX Runtime optimizes it, so serving does not redo the work at load."""
    effective = offline_level(level)
    if effective == "none":
        target.write_bytes(source.read_bytes())
        return

    options = session_options(effective, threads=1)
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def applies(model: onnx.ModelProto) -> bool:
    return any(node.op_type in COMPUTE_OPS for node in model.graph.node)


def _calibration_batches(
    dataset: Dataset, rows: int = CALIBRATION_ROWS, batch: int = 16
) -> Iterator[dict[str, np.ndarray]]:
    limit = min(rows, dataset.rows)
    for start in range(0, limit, batch):
        yield dataset.batch(start, min(start + batch, limit))


def _preprocess(source: Path, work: Path, name: str) -> Path:
    """ORT's recommended pre-processing (shape inference, basic fusions) before quantizing."""
    prepared = work / f"{name}.preprocessed.onnx"
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    except Exception:
        # It only improves the result; quantize the plain graph when it cannot run.
        return source
    return prepared


def _quantize_dynamic(source: Path, target: Path, work: Path) -> None:
    prepared = _preprocess(source, work, "dynamic")
    quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)


def _quantize_static(source: Path, target: Path, calibration: Dataset, work: Path) -> None:
    prepared = _preprocess(source, work, "static")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = _calibration_batches(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    reader: Any = Reader()
    quantize_static(
        str(prepared),
        str(target),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=False,
    )


def _convert_fp16(source: Path, target: Path) -> None:

    model = onnx.load(str(source))
    with warnings.catch_warnings():
        # One warning per tiny weight clipped to FP16: noise; validation judges the result.
        warnings.simplefilter("ignore", UserWarning)
        # Inputs and outputs stay FP32: clients and the signature do not change with the variant.
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(half, str(target))


def build_variants(
    base: Path,
    work: Path,
    names: list[str],
    *,
    level: GraphOptimization,
    calibration: Dataset | None,
) -> Iterator[Variant]:
    """Build each planned variant; a failure is recorded on the variant, not fatal to the build."""
    model = onnx.load(str(base))
    quantizable = applies(model)
    # ORT's quantizer logs advice through the root logger; our log lines are the reporter's.
    logging.getLogger().setLevel(logging.ERROR)
    for name in names:
        target = work / f"{name}.onnx"
        if name != FP32 and not quantizable:
            yield Variant(
                name,
                QUANTIZATION_OF[name],
                None,
                "not applicable: no MatMul/Gemm/Conv in the graph",
            )
            continue
        staged = work / f"{name}.raw.onnx"
        try:
            if name == FP32:
                staged = base
            elif name == INT8:
                _quantize_dynamic(base, staged, work)
            elif name == INT8_STATIC:
                assert calibration is not None
                _quantize_static(base, staged, calibration, work)
            elif name == FP16:
                _convert_fp16(base, staged)
            optimize_graph(staged, target, level)
            make_session(target, level="none")  # proves it loads before it is measured
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            yield Variant(name, QUANTIZATION_OF[name], None, f"build failed: {text[:300]}")
            continue
        yield Variant(name, QUANTIZATION_OF[name], target)
