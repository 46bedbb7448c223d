"""TensorFlow SavedModels (an archive of the folder) and Keras models (`.keras`, `.h5`),
converted to ONNX by tf2onnx; TensorFlow itself runs the reference predictions.

Why tf2onnx directly: Keras 3's own `model.export(format="onnx")` calls tf2onnx too (on the
TensorFlow backend), but renames every output to `Identity:0`; `tf2onnx.convert.from_keras`
keeps the Keras layer names, and its SavedModel loader keeps the serving signature's keys.
Both gave the same numbers (max |diff| 6e-8 on an MLP, docs/build.md)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# TensorFlow prints pages of C++ start-up notes on stderr, which the build's log would carry.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from tf2onnx import tf_loader

from modelship_runtime.build import archives
from modelship_runtime.build.conversion import (
    ConvertedModel,
    OutputRoles,
    Prediction,
    Reference,
)
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.signature import Signature, signature_of_onnx

OPSET = 17
SERVING_SIGNATURE = "serving_default"
# What an unpacked SavedModel may take of the build's scratch space.
MAX_UNPACKED_BYTES = 4 << 30


def unconverted_ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(op type, node name) of every node ONNX does not define: tf2onnx leaves a TensorFlow op it
    cannot map in the graph under its TensorFlow name (and only logs it)."""
    missing = []
    for node in _nodes(model.graph):
        if node.domain in {"", "ai.onnx"} and not onnx.defs.has(node.op_type):
            missing.append((node.op_type, node.name))
    return missing


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:  # the bodies of If and Loop
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _nodes(sub)


def _refuse_unconverted(model: onnx.ModelProto, what: str) -> None:
    missing = unconverted_ops(model)
    if not missing:
        return
    types = sorted({op for op, _ in missing})
    where = ", ".join(f"{op} ({name})" for op, name in missing[:4])
    raise ConversionError(
        f"the {what} uses TensorFlow ops that tf2onnx cannot convert to ONNX: "
        f"{', '.join(types)}; at {where}"
    )


def _check_declared(declared: Signature | None, found: Signature) -> None:
    """A signature in the spec must name the model's own inputs (it cannot rename them)."""
    if declared is None:
        return
    want = [s.name for s in declared.inputs]
    have = [s.name for s in found.inputs]
    if sorted(want) != sorted(have):
        raise ConversionError(
            f"spec.model.signature names inputs {want}, but the model's inputs are {have}"
        )


def _finish(model: onnx.ModelProto, what: str, predict_outputs: Any) -> ConvertedModel:
    _refuse_unconverted(model, what)
    found = signature_of_onnx(model)
    # The first axis is the batch, whatever tf2onnx named it.
    signature = Signature(
        inputs=[s.model_copy(update={"shape": [-1, *s.shape[1:]]}) for s in found.inputs],
        outputs=[s.model_copy(update={"shape": [-1, *s.shape[1:]]}) for s in found.outputs],
    )
    # Scores are the first output; the class, where there are several, its argmax.
    roles = OutputRoles(label=None, scores=signature.outputs[0].name)

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        return roles.interpret(predict_outputs(inputs))

    return ConvertedModel(
        model=model,
        signature=signature,
        task="generic",
        roles=roles,
        reference=Reference(f"the original {what} in TensorFlow", predict),
        framework=f"tensorflow {tf.__version__}",
    )


# --- Keras --------------------------------------------------------------------------------


def _load_keras(path: Path, kind: str) -> Any:
    if kind not in {"keras-zip", "hdf5"}:
        raise ConversionError(
            f"source is not a Keras model file (it looks like {kind}); --format keras expects "
            "a .keras file (model.save) or a legacy .h5 file"
        )
    # Keras reads the format from the file name, and the source may be named anything: load a
    # copy in scratch space (never next to the source, which may be a read-only mount).
    with tempfile.TemporaryDirectory(prefix="modelship-keras-") as scratch:
        named = Path(scratch) / ("model.keras" if kind == "keras-zip" else "model.h5")
        shutil.copyfile(path, named)
        try:
            # safe_mode refuses Lambda layers, whose Python bytecode would run on load.
            return tf.keras.models.load_model(named, compile=False, safe_mode=True)
        except Exception as exc:
            raise ConversionError(f"the Keras model cannot be loaded: {first_line(exc)}") from exc


def _convert_keras(path: Path, kind: str) -> ConvertedModel:
    model = _load_keras(path, kind)
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise ConversionError(
            "the Keras model has no defined inputs (a Sequential model saved before it was "
            "built?); give it a keras.Input and save it again"
        )
    specs = [
        tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype), name=_input_name(x, i))
        for i, x in enumerate(inputs)
    ]
    try:
        onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=specs, opset=OPSET)
    except Exception as exc:
        raise ConversionError(f"tf2onnx cannot convert the Keras model: {first_line(exc)}") from exc
    names = [s.name for s in specs]

    def predict_outputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [tf.constant(batch[n]) for n in names]
        result = model(args if len(args) > 1 else args[0], training=False)
        values = result if isinstance(result, list | tuple) else [result]
        return {o.name: np.asarray(v) for o, v in zip(onnx_model.graph.output, values, strict=True)}

    return _finish(onnx_model, "Keras model", predict_outputs)


def _input_name(tensor: Any, index: int) -> str:
    name = str(getattr(tensor, "name", "") or "").split(":")[0]
    return name or f"input_{index}"


# --- SavedModel ---------------------------------------------------------------------------


def _convert_saved_model(path: Path, kind: str) -> ConvertedModel:
    if kind not in {"tar", "savedmodel-zip", "zip"}:
        raise ConversionError(
            f"source is not a SavedModel archive (it looks like {kind}); --format tensorflow "
            "expects the SavedModel folder packed as tar, tar.gz or zip"
        )
    # Unpacked in scratch space that lives as long as the reference predictions need it.
    scratch = tempfile.TemporaryDirectory(prefix="modelship-savedmodel-")
    root = archives.unpack(path, kind, Path(scratch.name), max_bytes=MAX_UNPACKED_BYTES)
    folder = archives.find_saved_model(root)
    try:
        loaded = tf.saved_model.load(str(folder))
    except Exception as exc:
        raise ConversionError(f"the SavedModel cannot be loaded: {first_line(exc)}") from exc
    signatures = getattr(loaded, "signatures", {})
    if SERVING_SIGNATURE not in signatures:
        raise ConversionError(
            f"the SavedModel has no {SERVING_SIGNATURE!r} signature "
            f"(it has: {', '.join(signatures) or 'none'}); save it with "
            f"signatures={{'{SERVING_SIGNATURE}': ...}}"
        )
    serve = signatures[SERVING_SIGNATURE]
    try:
        # The path of tf2onnx's own `--saved-model` command line: freeze the signature's graph,
        # then map it, naming the ONNX inputs and outputs by the signature's keys.
        graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
            str(folder),
            None,
            None,
            tag="serve",
            signatures=[SERVING_SIGNATURE],
            return_initialized_tables=True,
            return_tensors_to_rename=True,
        )
        onnx_model, _ = tf2onnx.convert._convert_common(
            graph_def,
            name="savedmodel",
            opset=OPSET,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            initialized_tables=tables,
        )
    except Exception as exc:
        raise ConversionError(f"tf2onnx cannot convert the SavedModel: {first_line(exc)}") from exc

    def predict_outputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _ = scratch  # held by this closure: the folder goes when the converted model does
        result = serve(**{name: tf.constant(value) for name, value in batch.items()})
        return {name: np.asarray(value) for name, value in result.items()}

    return _finish(onnx_model, "SavedModel", predict_outputs)


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:
    converted = _convert_keras(path, kind) if fmt == "keras" else _convert_saved_model(path, kind)
    _check_declared(signature, converted.signature)
    return converted
