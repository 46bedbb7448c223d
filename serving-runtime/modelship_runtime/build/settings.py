"""Typed settings of one build, parsed once from the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelship_runtime.build.conversion import SourceFormat
from modelship_runtime.build.fetching import RetryPolicy
from modelship_runtime.build.optimization import Quantization
from modelship_runtime.build.progress import ProgressMode
from modelship_runtime.build.runner import GraphOptimization
from modelship_runtime.build.signature import Signature
from modelship_runtime.build.validation import Metric, TimingBudget


class BuildSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    format: SourceFormat
    output: Path
    sha256: str | None = None
    allow_unsafe_formats: bool = False
    signature: Signature | None = None
    graph_optimization: GraphOptimization = "all"
    quantization: Quantization = "auto"
    calibration_data: str | None = None
    validation_data: str | None = None
    validation_metric: Metric | None = None
    max_accuracy_drop: float = Field(default=0.01, ge=0)
    publish: str | None = None
    summary_file: Path | None = None
    progress: ProgressMode = "auto"
    timing: TimingBudget = Field(default_factory=TimingBudget)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.strip().lower().removeprefix("sha256:")
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise ValueError("must be 64 hexadecimal characters")
        return digest
