"""Small ONNX models built with onnx.helper for the runtime's tests and benchmarks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

# V2 datatype -> ONNX element type, for every datatype the runtime serves.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def identity_model(path: Path, datatypes: tuple[str, ...] = tuple(ONNX_TYPES)) -> Path:
    """in_<DT> [-1, 3] -> out_<DT> = Identity, one pair per datatype."""
    inputs, outputs, nodes = [], [], []
    for dt in datatypes:
        elem = ONNX_TYPES[dt]
        inputs.append(helper.make_tensor_value_info(f"in_{dt}", elem, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(f"out_{dt}", elem, ["batch", 3]))
        nodes.append(helper.make_node("Identity", [f"in_{dt}"], [f"out_{dt}"]))
    return _save(helper.make_graph(nodes, "identity", inputs, outputs), path)


def two_input_model(path: Path, width: int = 4) -> Path:
    """a, b [-1, width] FP32 -> sum = a + b, product = a * b."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", width])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", width])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", width])
    p = helper.make_tensor_value_info("product", TensorProto.FLOAT, ["batch", width])
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Mul", ["a", "b"], ["product"]),
    ]
    return _save(helper.make_graph(nodes, "two_input", [a, b], [s, p]), path)


def mlp_model(path: Path, sizes: tuple[int, ...] = (16, 64, 64, 4), seed: int = 0) -> Path:
    """x [-1, sizes[0]] FP32 -> scores [-1, sizes[-1]] (ReLU MLP) and label = argmax [-1] INT64."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{layer}"), numpy_helper.from_array(b, f"b{layer}")]
        last = layer == len(sizes) - 2
        out = "scores" if last else f"h{layer}"
        gemm_out = out if last else f"g{layer}"
        nodes.append(helper.make_node("Gemm", [current, f"w{layer}", f"b{layer}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [out]))
        current = out
    nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", sizes[-1]]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=inits,
    )
    return _save(graph, path)


def regressor_model(path: Path, width: int = 3) -> Path:
    """x [-1, width] FP32 -> y [-1, 1] = sum of the row (a regressor with an exact answer)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)
    return _save(helper.make_graph([node], "regressor", [x], [y], initializer=[axes]), path)


def fixed_batch_model(path: Path) -> Path:
    """x [2, 3] FP32 -> y = x + 1: a model whose first dimension is fixed, so never batched."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    one = numpy_helper.from_array(np.ones((1,), dtype=np.float32), "one")
    node = helper.make_node("Add", ["x", "one"], ["y"])
    return _save(helper.make_graph([node], "fixed", [x], [y], initializer=[one]), path)


def scale_model(path: Path) -> Path:
    """x [-1, -1] FP32 -> y = 2x: any width, so requests of different widths must not be merged."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "width"])
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    node = helper.make_node("Mul", ["x", "two"], ["y"])
    return _save(helper.make_graph([node], "scale", [x], [y], initializer=[two]), path)
