"""The ONNX Runtime session: options, signature, warm-up and execution."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelship_runtime.server.datatypes import ORT_TO_V2, numpy_dtype
from modelship_runtime.server.settings import GraphOptimization

log = logging.getLogger(__name__)

_OPTIMIZATION = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class ModelLoadError(Exception):
    """The ONNX file could not be turned into a session we can serve."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of the model; -1 marks a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(arg: Any) -> TensorSpec | None:
    datatype = ORT_TO_V2.get(arg.type)
    if datatype is None:
        return None  # sequences and maps (e.g. ZipMap) have no V2 tensor form
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, shape)


class OnnxModel:
    """An ONNX Runtime session with its V2 signature; `run` is thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        intra_op_threads: int,
        inter_op_threads: int = 1,
        graph_optimization: GraphOptimization = "all",
        execution_providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = _OPTIMIZATION[graph_optimization]
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        available = set(ort.get_available_providers())
        providers = [p for p in execution_providers if p in available]
        missing = [p for p in execution_providers if p not in available]
        if missing:
            log.warning("execution providers not available here, skipped: %s", ", ".join(missing))
        if not providers:
            providers = ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {str(path)!r}: {exc}") from exc
        self.providers = tuple(self.session.get_providers())
        self.intra_op_threads = intra_op_threads
        self.warm_run_s = 0.0
        inputs = [_spec(a) for a in self.session.get_inputs()]
        if any(s is None for s in inputs):
            raise ModelLoadError(
                f"{str(path)!r} has a non-tensor input; only tensors can be served"
            )
        self.inputs: tuple[TensorSpec, ...] = tuple(s for s in inputs if s is not None)
        self.outputs: tuple[TensorSpec, ...] = tuple(
            s for s in (_spec(a) for a in self.session.get_outputs()) if s is not None
        )
        if not self.outputs:
            raise ModelLoadError(f"{str(path)!r} has no tensor output")
        self.input_by_name = {s.name: s for s in self.inputs}
        self.output_by_name = {s.name: s for s in self.outputs}
        self.output_names = [s.name for s in self.outputs]
        # Rows can be stacked along dimension 0 only when every tensor has a free first dimension.
        self.batchable = all(len(s.shape) >= 1 and s.shape[0] == -1 for s in self.inputs) and all(
            len(s.shape) >= 1 and s.shape[0] == -1 for s in self.outputs
        )

    def run(self, feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        """Run the model; outputs come back in `self.outputs` order."""
        result: list[npt.NDArray[Any]] = self.session.run(self.output_names, feeds)
        return result

    def example_feeds(self) -> dict[str, npt.NDArray[Any]]:
        """Zero-valued inputs of one row, used to warm the session up."""
        feeds: dict[str, npt.NDArray[Any]] = {}
        for spec in self.inputs:
            shape = tuple(1 if d < 0 else d for d in spec.shape)
            if spec.datatype == "BYTES":
                array = np.empty(shape, dtype=np.object_)
                array.fill("")
            else:
                array = np.zeros(shape, dtype=numpy_dtype(spec.datatype))
            feeds[spec.name] = array
        return feeds

    def warm_up(self, runs: int) -> float:
        """Run the model a few times so the first client does not pay for lazy allocations.

        Returns the fastest single-row run in seconds (0 when `runs` is 0).
        """
        feeds = self.example_feeds()
        fastest = 0.0
        for index in range(runs):
            started = time.perf_counter()
            self.run(feeds)
            elapsed = time.perf_counter() - started
            fastest = elapsed if index == 0 else min(fastest, elapsed)
        return fastest
