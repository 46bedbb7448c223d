"""ONNX Runtime sessions for the build: pinned threads, graph optimization levels, named outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

GraphOptimization = Literal["none", "basic", "extended", "all"]

LEVELS: dict[str, Any] = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(level: GraphOptimization, threads: int) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Quiet: warnings about unused initializers would drown the build's own log lines.
    options.log_severity_level = 3
    return options


def make_session(model: bytes | Path, *, level: GraphOptimization = "all", threads: int = 1) -> Any:
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(
        source, session_options(level, threads), providers=["CPUExecutionProvider"]
    )


def run_session(session: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, inputs)
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}
