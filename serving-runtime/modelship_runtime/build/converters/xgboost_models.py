"""XGBoost sources (native JSON/UBJSON, or pickled when allowed) converted with onnxmltools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxmltools
import xgboost

from modelship_runtime.build.conversion import ConvertedModel
from modelship_runtime.build.converters.sklearn_models import load_pickled
from modelship_runtime.build.converters.tree_boosters import finish
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.signature import Signature


def _load_xgboost(path: Path, kind: str) -> tuple[Any, bool, int]:
    if kind in {"pickle", "joblib"}:
        model = load_pickled(path, kind, "xgboost", "an XGBoost model")
        if isinstance(model, xgboost.XGBClassifier | xgboost.XGBRegressor):
            return model, isinstance(model, xgboost.XGBClassifier), int(model.n_features_in_)
        raise ConversionError(
            f"source holds a {type(model).__name__}, not an XGBClassifier or XGBRegressor"
        )
    booster = xgboost.Booster()
    try:
        # Native JSON/UBJSON: plain data, no code runs while loading it.
        booster.load_model(str(path))
    except xgboost.core.XGBoostError as exc:
        raise ConversionError(
            f"source is not an XGBoost model file (json/ubj; it looks like {kind}): "
            f"{first_line(exc)}"
        ) from exc
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective.startswith(("binary:", "multi:")):
        wrapper: Any = xgboost.XGBClassifier()
    elif objective.startswith(("reg:", "count:", "survival:")):
        wrapper = xgboost.XGBRegressor()
    else:
        raise ConversionError(
            f"XGBoost objective {objective!r} is not supported (classification or regression)"
        )
    wrapper.load_model(str(path))
    return wrapper, isinstance(wrapper, xgboost.XGBClassifier), int(booster.num_features())


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:
    model, classifier, n_features = _load_xgboost(path, kind)
    return finish(
        fmt,
        model,
        classifier=classifier,
        n_features=n_features,
        signature=signature,
        framework=f"xgboost {xgboost.__version__}",
        to_onnx=lambda m, initial: onnxmltools.convert_xgboost(m, initial_types=initial),
    )
