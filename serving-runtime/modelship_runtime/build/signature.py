"""Model signatures: tensor names, KServe V2 datatypes, shapes; their numpy/ONNX equivalents."""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelship_runtime.build.errors import BuildError

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

_NUMPY_BY_DATATYPE: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}

_DATATYPE_BY_ONNX: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
}


class TensorSpec(BaseModel):
    """One named tensor; -1 in `shape` is a dynamic dimension (the batch axis first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int]

    def numpy_dtype(self) -> np.dtype[np.generic]:
        return np.dtype(_NUMPY_BY_DATATYPE[self.datatype])


class Signature(BaseModel):
    """The inputs and outputs a served model exposes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(default_factory=list)


def parse_signature(text: str) -> Signature:
    """Parse the `--signature` JSON, naming what is wrong in one line."""
    try:
        return Signature.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise BuildError(f"--signature is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BuildError(f"--signature is invalid at {where}: {first['msg']}") from exc


def datatype_of_onnx(elem_type: int) -> str:
    try:
        return _DATATYPE_BY_ONNX[elem_type]
    except KeyError:
        name = onnx.TensorProto.DataType.Name(elem_type)
        raise BuildError(f"ONNX tensor type {name} has no KServe V2 datatype") from None


def onnx_elem_type(datatype: str) -> int:
    for elem, name in _DATATYPE_BY_ONNX.items():
        if name == datatype:
            return elem
    raise BuildError(f"datatype {datatype} has no ONNX tensor type")


def _spec_of_value_info(info: onnx.ValueInfoProto) -> TensorSpec:
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type"):
        raise BuildError(f"model output {info.name!r} is not a tensor (a sequence or map?)")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return TensorSpec(name=info.name, datatype=datatype_of_onnx(tensor.elem_type), shape=dims)


def signature_of_onnx(model: onnx.ModelProto) -> Signature:
    """The signature an ONNX graph declares (initializers listed as inputs are not inputs)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_spec_of_value_info(i) for i in model.graph.input if i.name not in initializers]
    outputs = [_spec_of_value_info(o) for o in model.graph.output]
    return Signature(inputs=inputs, outputs=outputs)
