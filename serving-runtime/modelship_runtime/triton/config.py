"""Rendering a Triton model repository (config.pbtxt and layout) for an ONNX model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, model_validator

# KServe V2 datatype -> Triton config data_type enum name.
DATA_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}

NAME_PATTERN = r"^[A-Za-z0-9_.\-:/]+$"


class TensorConfig(BaseModel):
    """An input or output in V2 terms; shape includes the batch dimension (-1 for any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    datatype: Literal[
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BYTES",
    ]  # fmt: skip
    shape: tuple[int, ...]

    @property
    def data_type(self) -> str:
        return DATA_TYPES[self.datatype]


class DynamicBatching(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_queue_delay_microseconds: int = Field(default=0, ge=0)
    preferred_batch_sizes: tuple[int, ...] = ()


class InstanceGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["KIND_CPU", "KIND_GPU"] = "KIND_CPU"
    count: int = Field(default=1, ge=1)
    gpus: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _gpus_only_for_gpu(self) -> InstanceGroup:
        if self.gpus and self.kind != "KIND_GPU":
            raise ValueError("gpus can only be listed for kind KIND_GPU")
        return self


class TritonModelConfig(BaseModel):
    """What the operator decides about a Triton-served model; renders to config.pbtxt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    max_batch_size: int = Field(default=0, ge=0)
    dynamic_batching: DynamicBatching | None = None
    instance_group: InstanceGroup = InstanceGroup()
    intra_op_threads: int | None = Field(default=None, ge=1)
    # Empty lets Triton auto-complete the signature from the ONNX file.
    inputs: tuple[TensorConfig, ...] = ()
    outputs: tuple[TensorConfig, ...] = ()

    @model_validator(mode="after")
    def _batching_is_consistent(self) -> TritonModelConfig:
        if self.dynamic_batching is not None and self.max_batch_size < 1:
            raise ValueError("dynamic_batching needs max_batch_size >= 1")
        too_big = [
            b
            for b in (self.dynamic_batching.preferred_batch_sizes if self.dynamic_batching else ())
            if b > self.max_batch_size
        ]
        if too_big:
            raise ValueError(
                f"preferred batch sizes {too_big} exceed max_batch_size {self.max_batch_size}"
            )
        if self.max_batch_size > 0:
            fixed = [
                t.name for t in (*self.inputs, *self.outputs) if not t.shape or t.shape[0] != -1
            ]
            if fixed:
                raise ValueError(
                    f"max_batch_size > 0 needs a free first dimension; fixed in {fixed}"
                )
        return self

    def is_scalar_per_row(self, tensor: TensorConfig) -> bool:
        """A [-1] tensor of a batching model has no dims left: Triton wants [1] reshaped to []."""
        return self.max_batch_size > 0 and len(tensor.shape) == 1

    def config_dims(self, tensor: TensorConfig) -> list[int]:
        """Triton leaves the batch dimension out of dims when the model batches."""
        dims = tensor.shape[1:] if self.max_batch_size > 0 else tensor.shape
        return list(dims) if dims else [1]


def _pbtxt_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelship_runtime.triton", "."),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # protobuf text, not HTML; strings go through the pbtxt filter
        keep_trailing_newline=True,
    )
    env.filters["pbtxt"] = _pbtxt_string
    return env


def render_config(config: TritonModelConfig) -> str:
    """Render config.pbtxt for `config`."""
    return _environment().get_template("config.pbtxt.j2").render(config=config).lstrip("\n")


def write_model_repository(
    repository: Path, config: TritonModelConfig, model_file: Path, version: int = 1
) -> Path:
    """Lay out `<name>/config.pbtxt` and `<name>/<version>/model.onnx`; return the model dir."""
    model_dir = repository / config.name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, version_dir / "model.onnx")
    (model_dir / "config.pbtxt").write_text(render_config(config))
    return model_dir
