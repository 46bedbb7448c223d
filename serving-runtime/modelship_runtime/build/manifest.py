"""The build manifest (DIR/manifest.json): variants, their files, digests, metrics, the pick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.signature import Signature

MANIFEST_NAME = "manifest.json"
MANIFEST_API_VERSION = "modelship.io/build/v1"
Task = Literal["classifier", "regressor", "generic"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class VariantMetrics(_Camel):
    """How a variant did on the validation inputs, and how fast it ran on the build machine."""

    samples: int
    agreement: float = Field(description="fraction of predictions equal to the original's")
    accuracy: float | None = None
    f1: float | None = None
    rmse: float | None = None
    max_abs_diff: float | None = Field(default=None, description="largest |variant - original|")
    score: float | None = Field(default=None, description="value of the validation metric")
    accuracy_drop: float = Field(description="original score minus this one (see docs/build.md)")
    p50_ms: float
    p99_ms: float
    throughput_per_sec: float = Field(description="samples per second at the throughput batch")


class VariantRecord(_Camel):
    name: str
    file: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    quantization: str
    graph_optimization: str
    passed: bool
    selected: bool = False
    reason: str | None = Field(default=None, description="why it failed or was not selected")
    metrics: VariantMetrics | None = None


class SourceRecord(_Camel):
    uri: str
    format: str
    sha256: str
    size_bytes: int


class ValidationRecord(_Camel):
    dataset: str | None
    dataset_sha256: str | None = None
    metric: str
    max_accuracy_drop: float
    samples: int
    reference: str = Field(description="what the variants were compared against")
    latency_batch: int = 1
    throughput_batch: int
    intra_op_threads: int = 1


class Manifest(_Camel):
    api_version: str = MANIFEST_API_VERSION
    created_at: str
    source: SourceRecord
    task: Task
    signature: Signature
    validation: ValidationRecord
    variants: list[VariantRecord]
    selected: str
    selected_file: str
    tools: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, mode="json"), indent=2) + "\n"


def read_manifest(path: Path) -> Manifest:
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise BuildError(f"{path} is not a modelship build manifest: {first}") from exc


def parse_manifest(data: bytes, origin: str) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise BuildError(f"{origin} is not a modelship build manifest: {first}") from exc
