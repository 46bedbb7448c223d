"""The REST wire format: JSON tensors and the binary tensor data extension, both directions."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelship_runtime.server.datatypes import (
    decode_bytes_tensor,
    encode_bytes_tensor,
    numpy_dtype,
)
from modelship_runtime.server.errors import BadRequest
from modelship_runtime.server.protocol import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    Tensor,
)

# Bound on elements in one tensor: well above any real request, far below what would exhaust
# memory if a client lied in `shape` (checked before allocating anything).
MAX_ELEMENTS = 1 << 28


def _object_or_empty(value: Any) -> Any:
    # Absent means empty; anything present must be an object (an empty list is not).
    return {} if value is None else value


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers")
    for d in raw:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise BadRequest(
                f"{where}: 'shape' must be a list of non-negative integers, got {raw!r}"
            )
    if len(raw) > 32:
        raise BadRequest(f"{where}: 'shape' has {len(raw)} dimensions; at most 32 are allowed")
    return tuple(raw)


def _flatten_strings(data: Any, out: list[Any], where: str) -> None:
    for item in data:
        if isinstance(item, list):
            _flatten_strings(item, out, where)
        elif isinstance(item, str):
            out.append(item.encode())
        elif isinstance(item, bool | int | float):
            out.append(str(item).encode())
        else:
            raise BadRequest(f"{where}: BYTES data must hold strings, got {type(item).__name__}")


def _json_tensor(
    data: Any, datatype: str, shape: tuple[int, ...], count: int, where: str
) -> npt.NDArray[Any]:
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        items: list[Any] = []
        _flatten_strings(data, items, where)
        array: npt.NDArray[Any] = np.empty(len(items), dtype=np.object_)
        array[:] = items
    else:
        array = json_array(data, datatype, where)
    if array.size != count:
        raise BadRequest(
            f"{where}: 'data' has {array.size} elements but shape {list(shape)} needs {count}"
        )
    return array.reshape(shape)


def json_array(data: list[Any], datatype: str, where: str) -> npt.NDArray[Any]:
    """A numeric tensor from (nested) JSON lists, shaped as they nest; every value checked
    against `datatype` (not BYTES)."""
    dtype = numpy_dtype(datatype)
    if dtype.kind == "f":
        # A flat list, the usual request, is read straight into the array: half the time of
        # asarray, which first walks the list to find how it nests. A nested list fails on its
        # first item and takes asarray, as do bad values (so their error reads the same).
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            return np.fromiter(data, dtype=dtype, count=len(data))
    try:
        if dtype.kind in "iu":
            return _integers(data, dtype, datatype, where)
        return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"{where}: 'data' does not hold {datatype} values ({exc})") from None


def _integers(data: list[Any], dtype: np.dtype[Any], datatype: str, where: str) -> npt.NDArray[Any]:
    """An integer tensor from JSON, every value checked: numpy would silently truncate 1.5 to
    1 and wrap 300 into an INT8. Parsed once without a dtype (in C), so a single float or an
    out-of-range value anywhere shows in the inferred type or in the extremes."""
    raw = np.asarray(data)
    if raw.dtype.kind == "f" and dtype == np.uint64 and not _any_float(data):
        # numpy infers float64 for integers past INT64's range: UINT64's upper half. Converted
        # directly, numpy itself refuses what UINT64 cannot hold.
        return np.asarray(data, dtype=dtype)
    if raw.dtype.kind == "f":
        raise BadRequest(f"{where}: 'data' holds floats for an integer datatype {datatype}")
    if raw.dtype.kind not in "iub":
        raise BadRequest(f"{where}: 'data' does not hold {datatype} values")
    if raw.size and raw.dtype.kind != "b":
        info = np.iinfo(dtype)
        low, high = int(raw.min()), int(raw.max())
        if low < info.min or high > info.max:
            raise BadRequest(
                f"{where}: 'data' holds {low if low < info.min else high}, out of {datatype}'s "
                f"range [{info.min}, {info.max}]"
            )
    return raw.astype(dtype, copy=False)


def _any_float(data: list[Any]) -> bool:
    """Whether any leaf of nested lists is a float (walked in Python: only on the rare path)."""
    stack = [data]
    while stack:
        for item in stack.pop():
            if isinstance(item, list):
                stack.append(item)
            elif isinstance(item, float):
                return True
    return False


def _binary_tensor(
    buffer: memoryview, datatype: str, shape: tuple[int, ...], count: int, where: str
) -> npt.NDArray[Any]:
    if datatype == "BYTES":
        return decode_bytes_tensor(buffer, count, where).reshape(shape)
    dtype = numpy_dtype(datatype)
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise BadRequest(
            f"{where}: binary_data_size is {len(buffer)} bytes but shape {list(shape)} of "
            f"{datatype} needs {expected}"
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def json_object(body: bytes | memoryview, expected: str) -> dict[str, Any]:
    """The request body as a JSON object; BadRequest otherwise (`expected` says what it holds)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"request body must be a JSON object {expected}")
    return doc


def decode_request(body: bytes, header_length: int | None) -> InferenceRequest:
    """Decode a V2 REST infer body; every problem is a BadRequest naming it."""
    if header_length is not None:
        if header_length <= 0 or header_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        header_bytes = body[:header_length]
        binary = memoryview(body)[header_length:]
    else:
        header_bytes, binary = body, memoryview(b"")
    doc = json_object(header_bytes, "with 'inputs'")
    raw_id = doc.get("id")
    if raw_id is not None and not isinstance(raw_id, str):
        raise BadRequest("'id' must be a string")
    parameters = _object_or_empty(doc.get("parameters"))
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be an object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    offset = 0
    inputs: list[Tensor] = []
    for index, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise BadRequest(f"inputs[{index}] must be an object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"inputs[{index}] needs a 'name' string")
        where = f"input {name!r}"
        datatype = raw.get("datatype")
        if not isinstance(datatype, str):
            raise BadRequest(f"{where} needs a 'datatype' string")
        numpy_dtype(datatype)
        shape = _shape(raw.get("shape"), where)
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            raise BadRequest(
                f"{where}: shape {list(shape)} has {count} elements; limit {MAX_ELEMENTS}"
            )
        params = _object_or_empty(raw.get("parameters"))
        if not isinstance(params, dict):
            raise BadRequest(f"{where}: 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise BadRequest(f"{where}: binary_data_size must be a non-negative integer")
            if "data" in raw:
                raise BadRequest(f"{where} has both 'data' and binary_data_size")
            if offset + size > len(binary):
                raise BadRequest(
                    f"{where}: binary_data_size {size} runs past the binary section "
                    f"({len(binary) - offset} bytes left)"
                )
            array = _binary_tensor(binary[offset : offset + size], datatype, shape, count, where)
            offset += size
        elif "data" in raw:
            array = _json_tensor(raw["data"], datatype, shape, count, where)
        else:
            raise BadRequest(f"{where} has neither 'data' nor a binary_data_size parameter")
        inputs.append(Tensor(name, datatype, array))
    if offset != len(binary):
        raise BadRequest(
            f"the binary section has {len(binary) - offset} bytes no input claims "
            "(binary_data_size values do not add up)"
        )
    outputs: list[RequestedOutput] | None = None
    raw_outputs = doc.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest("'outputs' must be a list")
        outputs = []
        for index, raw in enumerate(raw_outputs):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise BadRequest(f"outputs[{index}] must be an object with a 'name' string")
            out_params = _object_or_empty(raw.get("parameters"))
            if not isinstance(out_params, dict):
                raise BadRequest(f"outputs[{index}]: 'parameters' must be an object")
            binary_flag = out_params.get("binary_data")
            if binary_flag is not None and not isinstance(binary_flag, bool):
                raise BadRequest(f"outputs[{index}]: binary_data must be true or false")
            outputs.append(RequestedOutput(raw["name"], binary_flag))
    return InferenceRequest(inputs=inputs, id=raw_id, outputs=outputs, parameters=parameters)


def _json_data(array: npt.NDArray[Any]) -> Any:
    flat = array.reshape(-1)
    if flat.dtype == np.object_ or flat.dtype.kind in "US":
        return [
            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in flat
        ]
    return flat


def encode_response(
    response: InferenceResponse, request: InferenceRequest
) -> tuple[bytes, int | None]:
    """Encode a response; returns the body and the JSON header length when binary parts follow."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if request.wants_binary(tensor.name):
            if tensor.datatype == "BYTES":
                blob = encode_bytes_tensor(tensor.data)
            else:
                blob = np.ascontiguousarray(tensor.data).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(tensor.data)
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
