"""scikit-learn estimators and pipelines (pickled or joblib-dumped) converted with skl2onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import is_classifier, is_regressor

from modelship_runtime.build.conversion import ConvertedModel, OutputRoles, Prediction, Reference
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.pickle_inspection import CORRUPT, corrupt, inspect_pickle
from modelship_runtime.build.signature import Signature, TensorSpec, signature_of_onnx

DEFAULT_INPUT = "x"


def load_pickled(path: Path, kind: str, fmt: str, expectation: str) -> Any:
    """Unpickle, once inspection found only what models are made of (the caller has checked
    that unsafe formats were allowed)."""
    if kind not in {"pickle", "joblib"}:
        raise ConversionError(
            f"source is not a pickle or joblib file (it looks like {kind}); "
            f"--format {fmt} expects {expectation}"
        )
    # Every import the file would make is checked first; a refusal names it, and nothing ran.
    inspect_pickle(path, kind)
    try:
        return joblib.load(path)
    except CORRUPT as exc:
        raise corrupt(exc) from exc
    except (ImportError, AttributeError) as exc:
        raise ConversionError(
            f"source pickle needs code that is not installed here ({type(exc).__name__}: {exc})"
        ) from exc


def input_spec(signature: Signature | None, n_features: int, fmt: str) -> TensorSpec:
    """The single FP32 matrix input; a declared signature must match the feature count."""
    if signature is None:
        return TensorSpec(name=DEFAULT_INPUT, datatype="FP32", shape=[-1, n_features])
    if len(signature.inputs) != 1:
        raise ConversionError(
            f"--signature declares {len(signature.inputs)} inputs; {fmt} models take one matrix"
        )
    spec = signature.inputs[0]
    if len(spec.shape) != 2 or spec.shape[1] not in {-1, n_features}:
        raise ConversionError(
            f"--signature input {spec.name!r} has shape {spec.shape}, "
            f"the model takes [-1, {n_features}]"
        )
    if spec.datatype not in {"FP32", "FP64"}:
        raise ConversionError(
            f"--signature input {spec.name!r} is {spec.datatype}; {fmt} models take FP32"
        )
    return TensorSpec(name=spec.name, datatype="FP32", shape=[-1, n_features])


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:

    estimator = load_pickled(
        path, kind, fmt, "a scikit-learn estimator saved with joblib.dump or pickle"
    )
    if not hasattr(estimator, "predict"):
        raise ConversionError(
            f"source holds a {type(estimator).__name__}, not a scikit-learn estimator"
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise ConversionError(
            f"source {type(estimator).__name__} is not fitted (it has no n_features_in_)"
        )
    spec = input_spec(signature, int(n_features), fmt)
    classifier = bool(is_classifier(estimator))
    if not classifier and not is_regressor(estimator):
        raise ConversionError(
            f"source {type(estimator).__name__} is neither a classifier nor a regressor"
        )
    try:
        model = convert_sklearn(
            estimator,
            initial_types=[(spec.name, FloatTensorType([None, int(n_features)]))],
            # Plain probability tensors, not a sequence of maps: servable over V2 and comparable.
            options={"zipmap": False} if classifier else None,
        )
    except Exception as exc:
        raise ConversionError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {first_line(exc)}"
        ) from exc

    declared = signature_of_onnx(model)
    task, roles = OutputRoles.for_task(declared.outputs, classifier)
    has_proba = classifier and hasattr(estimator, "predict_proba")

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        features = inputs[spec.name]
        if classifier:
            proba = np.asarray(estimator.predict_proba(features)) if has_proba else None
            return Prediction(labels=np.asarray(estimator.predict(features)), scores=proba)
        values = np.asarray(estimator.predict(features)).reshape(features.shape[0], -1)
        return Prediction(labels=None, scores=values)

    return ConvertedModel(
        model=model,
        signature=Signature(inputs=[spec], outputs=declared.outputs),
        task=task,
        roles=roles,
        reference=Reference(f"the original {type(estimator).__name__} in scikit-learn", predict),
        framework=f"scikit-learn {sklearn.__version__}",
    )
