"""Signature parsing and ONNX signatures."""

from __future__ import annotations

import pytest
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.signature import parse_signature, signature_of_onnx
from onnx import TensorProto, helper


def test_parse_contract_example() -> None:
    sig = parse_signature(
        '{"inputs":[{"name":"x","datatype":"FP32","shape":[-1,30]}],"outputs":[]}'
    )
    assert sig.inputs[0].name == "x" and sig.inputs[0].shape == [-1, 30]
    assert str(sig.inputs[0].numpy_dtype()) == "float32"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"inputs":[{"name":"x","datatype":"FLOAT","shape":[1]}]}', "inputs.0.datatype"),
        ('{"inputs":[]}', "inputs"),
    ],
)
def test_parse_errors_name_the_field(text: str, needle: str) -> None:
    with pytest.raises(BuildError, match="--signature") as info:
        parse_signature(text)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_signature_of_onnx_skips_initializers_and_marks_dynamic_axes() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("b", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])],
    )
    sig = signature_of_onnx(helper.make_model(graph))
    assert [s.name for s in sig.inputs] == ["x"]
    assert sig.inputs[0].shape == [-1, 3] and sig.outputs[0].datatype == "FP32"
