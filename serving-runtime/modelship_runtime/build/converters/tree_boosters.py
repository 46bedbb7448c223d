"""What XGBoost and LightGBM conversion share: the input, onnxmltools' outputs, the reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnxmltools.convert.common.data_types import FloatTensorType

from modelship_runtime.build.conversion import ConvertedModel, OutputRoles, Prediction, Reference
from modelship_runtime.build.converters.sklearn_models import input_spec
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.signature import Signature, signature_of_onnx


def _reference(
    model: Any, classifier: bool, name: str
) -> Callable[[dict[str, np.ndarray]], Prediction]:
    """Predictions of the original; a raw LightGBM Booster returns P(class 1) for binary models."""

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        features = inputs[name]
        if hasattr(model, "predict_proba"):
            if classifier:
                proba = np.asarray(model.predict_proba(features))
                return Prediction(
                    labels=np.asarray(model.predict(features)).reshape(-1), scores=proba
                )
            return Prediction(
                labels=None, scores=np.asarray(model.predict(features)).reshape(len(features), -1)
            )
        raw = np.asarray(model.predict(features))
        if not classifier:
            return Prediction(labels=None, scores=raw.reshape(len(features), -1))
        proba = np.stack([1 - raw, raw], axis=1) if raw.ndim == 1 else raw
        return Prediction(labels=np.argmax(proba, axis=1), scores=proba)

    return predict


def finish(
    fmt: str,
    model: Any,
    *,
    classifier: bool,
    n_features: int,
    signature: Signature | None,
    framework: str,
    to_onnx: Callable[[Any, list[tuple[str, Any]]], onnx.ModelProto],
) -> ConvertedModel:
    spec = input_spec(signature, n_features, fmt)
    try:
        onnx_model = to_onnx(model, [(spec.name, FloatTensorType([None, n_features]))])
    except Exception as exc:
        raise ConversionError(
            f"onnxmltools cannot convert the {fmt} model: {first_line(exc)}"
        ) from exc
    declared = signature_of_onnx(onnx_model)
    task, roles = OutputRoles.for_task(declared.outputs, classifier)
    return ConvertedModel(
        model=onnx_model,
        signature=Signature(inputs=[spec], outputs=declared.outputs),
        task=task,
        roles=roles,
        reference=Reference(
            f"the original {type(model).__name__} in {fmt}",
            _reference(model, classifier, spec.name),
        ),
        framework=framework,
    )
