"""PyTorch sources (ExportedProgram `.pt2`, or TorchScript if allowed) exported by torch.onnx."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from modelship_runtime.build.conversion import ConvertedModel, OutputRoles, Prediction, Reference
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.signature import Signature, TensorSpec, signature_of_onnx

OPSET = 18
# Batch 1 is specialized away by torch.export; an example batch of 2 keeps the axis symbolic.
EXAMPLE_BATCH = 2


def _load(path: Path, kind: str) -> tuple[Any, str]:

    if kind == "torchscript":
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), "TorchScript module"
        except Exception as exc:
            raise ConversionError(
                f"source TorchScript file cannot be loaded: {first_line(exc)}"
            ) from exc
    if kind in {"exported-program", "zip"}:
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ConversionError(
                f"source is not a torch.export ExportedProgram: {first_line(exc)}"
            ) from exc
        return program, "ExportedProgram"
    raise ConversionError(
        f"source is not a PyTorch model file (it looks like {kind}); --format pytorch expects an "
        f"ExportedProgram saved with torch.export.save, or TorchScript with --allow-unsafe-formats"
    )


def _examples(signature: Signature) -> tuple[Any, ...]:

    tensors = []
    for spec in signature.inputs:
        shape = [EXAMPLE_BATCH] + [d if d > 0 else 1 for d in spec.shape[1:]]
        array = np.zeros(shape, dtype=spec.numpy_dtype())
        tensors.append(torch.from_numpy(array))
    return tuple(tensors)


def _export(module: Any, signature: Signature, examples: tuple[Any, ...]) -> onnx.ModelProto:

    names = [s.name for s in signature.inputs]
    output_names = [s.name for s in signature.outputs] or None
    errors: list[str] = []
    # Prefer the dynamo exporter (torch >= 2.5); fall back to the tracer where it is absent.
    try:
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            module,
            examples,
            input_names=names,
            output_names=output_names,
            dynamic_shapes=tuple({0: batch} for _ in names),
            opset_version=OPSET,
            dynamo=True,
        )
        return program.model_proto  # type: ignore[no-any-return]
    except Exception as exc:
        errors.append(f"dynamo exporter: {first_line(exc)}")
    try:
        buffer = io.BytesIO()
        torch.onnx.export(
            module,
            examples,
            buffer,
            input_names=names,
            output_names=output_names,
            dynamic_axes={name: {0: "batch"} for name in names + (output_names or [])},
            opset_version=OPSET,
            dynamo=False,
        )
        return onnx.load_from_string(buffer.getvalue())
    except Exception as exc:
        errors.append(f"tracing exporter: {first_line(exc)}")
    raise ConversionError("torch.onnx.export failed: " + "; ".join(errors))


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:
    del fmt
    if signature is None:
        raise ConversionError(
            "--signature is required for pytorch sources (input names, datatypes, shapes)"
        )
    loaded, description = _load(path, kind)
    module = loaded.module() if description == "ExportedProgram" else loaded
    examples = _examples(signature)
    model = _export(module, signature, examples)
    declared = signature_of_onnx(model)
    input_names = [s.name for s in signature.inputs]

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        with torch.no_grad():
            result = module(
                *(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in input_names)
            )
        first = result[0] if isinstance(result, tuple | list) else result
        scores = first.detach().cpu().numpy()
        labels = np.argmax(scores, axis=1) if scores.ndim == 2 and scores.shape[1] > 1 else None
        return Prediction(labels=labels, scores=scores)

    outputs = [
        TensorSpec(name=o.name, datatype=o.datatype, shape=[-1, *o.shape[1:]])
        for o in declared.outputs
    ]
    return ConvertedModel(
        model=model,
        signature=Signature(inputs=signature.inputs, outputs=outputs),
        task="generic",
        roles=OutputRoles(label=None, scores=declared.outputs[0].name),
        reference=Reference(f"the original {description} in PyTorch", predict),
        framework=f"torch {torch.__version__}",
    )
