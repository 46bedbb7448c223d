"""ONNX sources: parse, check, infer shapes; the unoptimized original is the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from modelship_runtime.build.conversion import ConvertedModel, OutputRoles, Prediction, Reference
from modelship_runtime.build.errors import ConversionError
from modelship_runtime.build.manifest import Task
from modelship_runtime.build.runner import make_session, run_session
from modelship_runtime.build.signature import Signature, signature_of_onnx


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        # Always protobuf: onnx.load would pick a text or JSON parser from a .txt/.json name.
        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError, TypeError) as exc:
        raise ConversionError(
            f"source is not an ONNX model (protobuf parse failed: {exc})"
        ) from exc
    if model.ir_version == 0 or not model.graph.node or not model.opset_import:
        # protobuf parses many non-ONNX byte strings into a mostly empty message
        raise ConversionError(
            "source is not an ONNX model (no graph, IR version or opset in the file)"
        )
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        raise ConversionError(
            "source ONNX model keeps weights in external data files; pass a single-file model"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"source ONNX model fails onnx.checker: {first}") from exc
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"source ONNX model fails shape inference: {first}") from exc


def roles_of(signature: Signature) -> tuple[Task, OutputRoles]:
    """A 1-D integer output next to a 2-D float output is a classifier's label and probabilities."""
    label = next(
        (
            o.name
            for o in signature.outputs
            if o.datatype in {"INT64", "INT32", "BYTES"} and len(o.shape) == 1
        ),
        None,
    )
    scores = next(
        (o.name for o in signature.outputs if o.datatype in {"FP32", "FP64", "FP16"}), None
    )
    if label and scores:
        return "classifier", OutputRoles(label=label, scores=scores)
    return "generic", OutputRoles(label=label, scores=scores or signature.outputs[0].name)


def reference_of_onnx(data: bytes, roles: OutputRoles, description: str) -> Reference:
    # No graph optimization at all: the reference is the model exactly as written.
    session = make_session(data, level="none", threads=1)

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        return roles.interpret(run_session(session, inputs))

    return Reference(description=description, predict=predict)


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:
    del fmt, kind
    model = load_onnx(path)
    declared = signature_of_onnx(model)
    if signature is not None:
        names = {s.name for s in declared.inputs}
        missing = [s.name for s in signature.inputs if s.name not in names]
        if missing:
            raise ConversionError(
                f"--signature names inputs {missing} that the ONNX model does not have "
                f"(it has {sorted(names)})"
            )
    if not declared.outputs:
        raise ConversionError("source ONNX model declares no outputs")
    task, roles = roles_of(declared)
    reference = reference_of_onnx(
        model.SerializeToString(), roles, "the source ONNX model, unoptimized"
    )
    return ConvertedModel(
        model=model,
        # Types and outputs come from the graph; a given signature may pin the inputs' dynamic axes.
        signature=Signature(
            inputs=signature.inputs if signature else declared.inputs, outputs=declared.outputs
        ),
        task=task,
        roles=roles,
        reference=reference,
        framework=f"onnx {onnx.__version__}",
    )
