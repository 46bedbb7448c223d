"""LightGBM sources (the native text model, or pickled when allowed) converted with onnxmltools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import onnxmltools

from modelship_runtime.build.conversion import ConvertedModel
from modelship_runtime.build.converters.sklearn_models import load_pickled
from modelship_runtime.build.converters.tree_boosters import finish
from modelship_runtime.build.errors import ConversionError, first_line
from modelship_runtime.build.signature import Signature


def _load_lightgbm(path: Path, kind: str) -> tuple[Any, bool, int]:
    if kind in {"pickle", "joblib"}:
        model = load_pickled(path, kind, "lightgbm", "a LightGBM model")
        if isinstance(model, lightgbm.LGBMClassifier | lightgbm.LGBMRegressor):
            return model, isinstance(model, lightgbm.LGBMClassifier), int(model.n_features_in_)
        if isinstance(model, lightgbm.Booster):
            booster = model
        else:
            raise ConversionError(f"source holds a {type(model).__name__}, not a LightGBM model")
    else:
        if kind != "lightgbm-text":
            raise ConversionError(
                "source is not a LightGBM model file (text format from Booster.save_model; "
                f"it looks like {kind})"
            )
        try:
            booster = lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as exc:
            raise ConversionError(f"source LightGBM model is corrupt: {first_line(exc)}") from exc
    objective = str(booster.dump_model(num_iteration=1).get("objective", ""))
    if objective.startswith(("binary", "multiclass")):
        return booster, True, int(booster.num_feature())
    if objective.startswith(
        ("regression", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie")
    ):
        return booster, False, int(booster.num_feature())
    raise ConversionError(
        f"LightGBM objective {objective!r} is not supported (classification or regression)"
    )


def convert(fmt: str, path: Path, *, kind: str, signature: Signature | None) -> ConvertedModel:
    model, classifier, n_features = _load_lightgbm(path, kind)
    return finish(
        fmt,
        model,
        classifier=classifier,
        n_features=n_features,
        signature=signature,
        framework=f"lightgbm {lightgbm.__version__}",
        # Plain probability tensors rather than ZipMap's sequence of maps.
        to_onnx=lambda m, initial: onnxmltools.convert_lightgbm(
            m, initial_types=initial, zipmap=False
        ),
    )
