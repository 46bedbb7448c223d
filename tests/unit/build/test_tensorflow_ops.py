"""Finding the TensorFlow ops tf2onnx left unconverted in a graph (it logs them, nothing more)."""

from __future__ import annotations

import onnx
from modelship_runtime.build.converters.tensorflow_models import unconverted_ops
from onnx import TensorProto, helper

TRUE = helper.make_tensor("v", TensorProto.BOOL, [], [1])


def _graph(nodes: list[onnx.NodeProto], name: str) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [None, 4])
    return helper.make_graph(nodes, name, [x], [y])


def test_unmapped_ops_are_found_also_inside_control_flow_bodies() -> None:
    then = _graph([helper.make_node("Lgamma", ["x"], ["t"], name="cond/Lgamma")], "then")
    other = _graph([helper.make_node("Relu", ["x"], ["e"], name="cond/Relu")], "else")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("MatrixSolve", ["r"], ["s"], name="solve"),
        helper.make_node("Constant", [], ["c"], value=TRUE),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if"),
    ]
    model = helper.make_model(_graph(nodes, "main"))
    assert unconverted_ops(model) == [("MatrixSolve", "solve"), ("Lgamma", "cond/Lgamma")]


def test_a_fully_converted_graph_has_none() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    assert unconverted_ops(helper.make_model(_graph(nodes, "main"))) == []
