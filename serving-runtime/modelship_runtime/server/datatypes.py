"""Mapping between Open Inference Protocol datatypes, numpy dtypes and ONNX Runtime type names."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from modelship_runtime.server.errors import BadRequest

# V2 datatype -> numpy dtype; BYTES is carried as an object array of bytes/str.
V2_TO_NUMPY: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

ORT_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

NUMPY_TO_V2: dict[np.dtype[np.generic], str] = {v: k for k, v in V2_TO_NUMPY.items()}

_LENGTH = struct.Struct("<I")


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """Return the numpy dtype of a V2 datatype or fail naming it."""
    try:
        return V2_TO_NUMPY[datatype]
    except KeyError:
        known = ", ".join(V2_TO_NUMPY)
        raise BadRequest(f"unsupported datatype {datatype!r}; expected one of {known}") from None


def v2_datatype(array: npt.NDArray[np.generic]) -> str:
    """Return the V2 datatype of a numpy array produced by the model."""
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    return NUMPY_TO_V2[array.dtype]


def element_size(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (BYTES has none)."""
    return V2_TO_NUMPY[datatype].itemsize


def decode_bytes_tensor(
    buffer: bytes | memoryview, count: int, name: str
) -> npt.NDArray[np.object_]:
    """Decode the length-prefixed BYTES serialization into an object array of `count` items."""
    items: list[bytes] = []
    view = memoryview(buffer)
    offset = 0
    end = len(view)
    for _ in range(count):
        if offset + 4 > end:
            raise BadRequest(f"input {name!r}: BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(
                f"input {name!r}: BYTES element of {length} bytes runs past the end of the data"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != end:
        raise BadRequest(
            f"input {name!r}: {end - offset} trailing bytes after {count} BYTES elements"
        )
    out = np.empty(count, dtype=np.object_)
    out[:] = items
    return out


def encode_bytes_tensor(array: npt.NDArray[np.generic]) -> bytes:
    """Serialize an array of strings/bytes as 4-byte little-endian length-prefixed elements."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def to_ort_strings(array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """ONNX Runtime wants str elements for tensor(string); clients send bytes."""
    flat = [
        item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
        for item in array.reshape(-1)
    ]
    out = np.empty(len(flat), dtype=np.object_)
    out[:] = flat
    return out.reshape(array.shape)
