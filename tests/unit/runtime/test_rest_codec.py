"""The REST wire format: decoding JSON and binary requests, encoding responses."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from modelship_runtime.server.datatypes import decode_bytes_tensor, encode_bytes_tensor
from modelship_runtime.server.errors import BadRequest
from modelship_runtime.server.protocol import InferenceRequest, InferenceResponse, Tensor
from modelship_runtime.server.rest_codec import decode_request, encode_response


def _json(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_json_tensor_nested_or_flat() -> None:
    for data in ([1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]]):
        request = decode_request(
            _json(
                {
                    "id": "a",
                    "inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 3], "data": data}],
                }
            ),
            None,
        )
        assert request.id == "a"
        np.testing.assert_array_equal(
            request.inputs[0].data, np.arange(1, 7, dtype=np.int32).reshape(2, 3)
        )


def test_binary_tensors_after_the_json_header() -> None:
    x = np.arange(6, dtype=np.float32)
    words = encode_bytes_tensor(np.array([b"ab", b""], dtype=np.object_))
    header = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": 24},
                },
                {
                    "name": "w",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(words)},
                },
            ]
        }
    )
    request = decode_request(header + x.tobytes() + words, len(header))
    np.testing.assert_array_equal(request.inputs[0].data.reshape(-1), x)
    assert list(request.inputs[1].data) == [b"ab", b""]


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"inputs": [{"name": "x", "datatype": "INT8", "shape": [2], "data": [1.5, 2]}]}, "floats"),
        ({"inputs": [{"name": "x", "datatype": "INT8", "shape": [2], "data": [1]}]}, "needs 2"),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2**30, 2**30], "data": []}]},
            "limit",
        ),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [True], "data": [1]}]}, "shape"),
        ({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [{}]}]}, "strings"),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "id": 4},
            "'id'",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": []}
                ]
            },
            "parameters",
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "outputs": [{"x": 1}],
            },
            "outputs[0]",
        ),
    ],
)
def test_json_problems_are_named(doc: object, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment.replace("[", r"\[")):
        decode_request(_json(doc), None)


def test_binary_size_must_match_the_shape() -> None:
    header = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [3],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    with pytest.raises(BadRequest, match="needs 12"):
        decode_request(header + b"\0" * 8, len(header))


def test_unclaimed_binary_bytes_are_rejected() -> None:
    header = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]})
    with pytest.raises(BadRequest, match="no input claims"):
        decode_request(header + b"\0" * 4, len(header))


def test_bytes_tensor_length_prefix_lies() -> None:
    with pytest.raises(BadRequest, match="runs past the end"):
        decode_bytes_tensor(struct.pack("<I", 100) + b"abc", 1, "w")
    with pytest.raises(BadRequest, match="inside a length prefix"):
        decode_bytes_tensor(b"\x01\x00", 1, "w")
    with pytest.raises(BadRequest, match="trailing bytes"):
        decode_bytes_tensor(struct.pack("<I", 1) + b"ab", 1, "w")


def test_encode_mixes_json_and_binary_outputs() -> None:
    request = decode_request(
        _json(
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}],
            }
        ),
        None,
    )
    a = np.array([[1.5, 2.5]], np.float32)
    b = np.array(["yes"], dtype=np.object_)
    response = InferenceResponse(
        "m", "1", [Tensor("a", "FP32", a), Tensor("b", "BYTES", b)], id="r"
    )
    body, json_length = encode_response(response, request)
    assert json_length is not None
    doc = orjson.loads(body[:json_length])
    assert doc["id"] == "r"
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert doc["outputs"][1]["data"] == ["yes"]
    np.testing.assert_array_equal(np.frombuffer(body[json_length:], np.float32), a.reshape(-1))


def test_binary_data_output_parameter_defaults_every_output() -> None:
    request = InferenceRequest(inputs=[], parameters={"binary_data_output": True})
    assert request.wants_binary("anything")
    response = InferenceResponse("m", "1", [Tensor("a", "FP16", np.ones(2, np.float16))])
    body, json_length = encode_response(response, request)
    assert json_length is not None and len(body) - json_length == 4


def _int_request(datatype: str, data: list[object]) -> bytes:
    shape = list(np.asarray(data, dtype=object).shape)
    doc = {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]}
    return _json(doc)


@pytest.mark.parametrize(
    ("datatype", "data", "fragment"),
    [
        # Beyond the 64 values the old check looked at (nested rows, the first one last).
        pytest.param("INT64", [[1.5]] + [[1]] * 70, "floats", id="a float among 71 rows"),
        pytest.param("INT32", [1, 2, 2.0], "floats", id="an integral float is still a float"),
        pytest.param("INT8", [1] * 70 + [300], "out of INT8's range", id="wrapped by numpy"),
        pytest.param("UINT8", [3, -1], "out of UINT8's range", id="negative for unsigned"),
        pytest.param("INT32", [1, "2"], "does not hold INT32", id="a string"),
        pytest.param("UINT64", [2**64 - 1, 1.5], "floats", id="a float beside UINT64's top"),
    ],
)
def test_integer_tensors_check_every_value(
    datatype: str, data: list[object], fragment: str
) -> None:
    with pytest.raises(BadRequest, match=fragment):
        decode_request(_int_request(datatype, data), None)


def test_integer_tensors_keep_their_values() -> None:
    top = decode_request(_int_request("UINT64", [0, 2**64 - 1]), None).inputs[0].data
    assert top.dtype == np.uint64 and top.tolist() == [0, 2**64 - 1]
    request = decode_request(_int_request("INT16", [-32768, 0, 32767]), None)
    array = request.inputs[0].data
    assert array.dtype == np.int16 and array.tolist() == [-32768, 0, 32767]
    booleans = decode_request(_int_request("UINT8", [True, False]), None).inputs[0].data
    assert booleans.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        pytest.param("FP32", [0.5, 1, True], [0.5, 1.0, 1.0], id="flat FP32, ints and a bool"),
        pytest.param("FP64", [[0.1], [0.2], [0.3]], [0.1, 0.2, 0.3], id="nested FP64"),
        pytest.param("FP16", [1.5, -2.0, 65504.0], [1.5, -2.0, 65504.0], id="flat FP16"),
    ],
)
def test_float_tensors_flat_or_nested(
    datatype: str, data: list[object], expected: list[float]
) -> None:
    array = decode_request(_int_request(datatype, data), None).inputs[0].data
    assert array.dtype.name == {"FP16": "float16", "FP32": "float32", "FP64": "float64"}[datatype]
    np.testing.assert_array_equal(array.reshape(-1), np.asarray(expected, dtype=array.dtype))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([1.0, {"a": 1}], id="an object"),
        pytest.param([1.0, [2.0]], id="ragged nesting"),
        pytest.param([1.0, "x"], id="a string that is no number"),
    ],
)
def test_float_tensors_refuse_what_is_no_number(data: list[object]) -> None:
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": data}]}
    with pytest.raises(BadRequest, match="does not hold FP32 values"):
        decode_request(_json(doc), None)
