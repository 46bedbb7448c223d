"""TF Serving's REST API (`/v1/models/...`) for clients that already speak it: model status,
metadata, and `:predict` in the row (`instances`) and columnar (`inputs`) forms, translated to
and from the same inference requests the Open Inference Protocol uses (so batching, admission,
deadlines and metrics are shared). Errors keep TF Serving's shape, `{"error": "..."}`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from modelship_runtime.server.datatypes import to_ort_strings
from modelship_runtime.server.errors import BadRequest, InferenceError
from modelship_runtime.server.protocol import InferenceRequest, InferenceResponse, Tensor
from modelship_runtime.server.rest_codec import json_array, json_object

# The one signature a served ONNX model has, under TF Serving's default name.
SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

_TF_DTYPES = {
    "BOOL": "DT_BOOL",
    "UINT8": "DT_UINT8",
    "UINT16": "DT_UINT16",
    "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64",
    "INT8": "DT_INT8",
    "INT16": "DT_INT16",
    "INT32": "DT_INT32",
    "INT64": "DT_INT64",
    "FP16": "DT_HALF",
    "FP32": "DT_FLOAT",
    "FP64": "DT_DOUBLE",
    "BYTES": "DT_STRING",
}

Form = Literal["row", "columnar"]
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class Predict:
    """A decoded `:predict` body: the inference request and the form to answer in."""

    request: InferenceRequest
    form: Form


def model_status(version: str, ready: bool) -> bytes:
    """GET /v1/models/{name}: the one version this server holds, and whether it serves."""
    state = "AVAILABLE" if ready else "LOADING"
    ok = {"error_code": "OK", "error_message": ""}
    doc = {"model_version_status": [{"version": version, "state": state, "status": ok}]}
    return orjson.dumps(doc)


def model_metadata(name: str, version: str, metadata: dict[str, Any]) -> bytes:
    """GET /v1/models/{name}/metadata: the model's inputs and outputs as a signature_def."""

    def tensors(specs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            spec["name"]: {
                "dtype": _TF_DTYPES.get(spec["datatype"], "DT_INVALID"),
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in spec["shape"]],
                    "unknown_rank": False,
                },
                "name": spec["name"],
            }
            for spec in specs
        }

    signature = {
        "inputs": tensors(metadata["inputs"]),
        "outputs": tensors(metadata["outputs"]),
        "method_name": PREDICT_METHOD,
    }
    doc = {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }
    return orjson.dumps(doc)


def decode_predict(body: bytes, inputs: list[dict[str, Any]]) -> Predict:
    """A `:predict` body against the model's `inputs` (name, datatype, shape) metadata."""
    doc = json_object(body, "with 'instances' or 'inputs'")
    signature = doc.get("signature_name", SIGNATURE)
    if signature not in (SIGNATURE, ""):
        raise BadRequest(f"Serving signature name: {signature!r} not found in signature def")
    if ("instances" in doc) == ("inputs" in doc):
        raise BadRequest("the request needs exactly one of 'instances' (row form) or 'inputs'")
    datatypes = {spec["name"]: spec["datatype"] for spec in inputs}
    if "instances" in doc:
        columns = _rows_to_columns(doc["instances"], list(datatypes))
        form: Form = "row"
    else:
        columns = _named(doc["inputs"], list(datatypes), "inputs")
        form = "columnar"
    tensors = [
        Tensor(name, datatypes[name], _tensor(value, datatypes[name], f"input {name!r}"))
        for name, value in columns.items()
    ]
    return Predict(InferenceRequest(inputs=tensors), form)


def _named(value: Any, names: list[str], where: str) -> dict[str, Any]:
    """{input: value}: an object keyed by input names, or the value of the only input."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise BadRequest(f"{where} names {unknown}; the model takes {names}")
        return value
    if len(names) != 1:
        raise BadRequest(f"the model takes {len(names)} inputs {names}: {where} must name them")
    return {names[0]: value}


def _rows_to_columns(instances: Any, names: list[str]) -> dict[str, list[Any]]:
    """The row form's instances, one per batch row, as one list per input."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list, one element per row")
    if not isinstance(instances[0], dict):
        return _named(instances, names, "instances")
    keys = set(instances[0])
    columns: dict[str, list[Any]] = {name: [] for name in _named(instances[0], names, "instances")}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != keys:
            raise BadRequest(
                f"instances[{index}] does not name the same inputs as instances[0] ({sorted(keys)})"
            )
        for name, value in instance.items():
            columns[name].append(value)
    return columns


def _tensor(value: Any, datatype: str, where: str) -> npt.NDArray[Any]:
    if datatype != "BYTES":
        return json_array(value, datatype, where)
    try:
        nested = np.array(value, dtype=np.object_)
    except ValueError as exc:
        raise BadRequest(f"{where}: not a tensor of strings ({exc})") from None
    flat = nested.reshape(-1)
    for i, item in enumerate(flat):
        flat[i] = _string(item, where)
    return flat.reshape(nested.shape)


def _string(item: Any, where: str) -> bytes:
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str):
        try:
            return base64.b64decode(item["b64"], validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"{where}: invalid base64 ({exc})") from None
    raise BadRequest(f'{where}: strings must be JSON strings or {{"b64": "..."}} objects')


def encode_predict(response: InferenceResponse, form: Form) -> bytes:
    """TF Serving's answer: `predictions` per row, or `outputs` as whole tensors."""
    values = {tensor.name: _json_value(tensor) for tensor in response.outputs}
    if form == "columnar":
        only = len(values) == 1
        doc: dict[str, Any] = {"outputs": next(iter(values.values())) if only else values}
    elif len(values) == 1:
        doc = {"predictions": next(iter(values.values()))}
    else:
        rows = {tensor.shape[0] if tensor.shape else -1 for tensor in response.outputs}
        if len(rows) != 1 or -1 in rows:
            raise InferenceError(
                "the model's outputs do not share a batch dimension, so they cannot be answered "
                "one row at a time; send the columnar form ('inputs')"
            )
        count = rows.pop()
        # Plain lists, through orjson itself: a row of an ndarray may be a numpy scalar orjson
        # does not encode (ORT's int64 is numpy.longlong), and tolist() would spell FP32 values
        # at float64 length where the columnar form gives their own shortest form.
        lists = {name: orjson.loads(orjson.dumps(v, option=_NUMPY)) for name, v in values.items()}
        doc = {"predictions": [{name: v[i] for name, v in lists.items()} for i in range(count)]}
    return orjson.dumps(doc, option=_NUMPY)


def _json_value(tensor: Tensor) -> Any:
    data = tensor.data
    if data.dtype == np.object_ or data.dtype.kind in "US":
        return to_ort_strings(data).tolist()  # str elements, shape kept
    return np.ascontiguousarray(data)
