"""Validation metrics: F1, and the drop versus the original for classifiers and regressors."""

from __future__ import annotations

import numpy as np
from modelship_runtime.build.conversion import Prediction
from modelship_runtime.build.validation import Baseline, _quality, f1_score


def test_binary_f1_uses_the_positive_class() -> None:
    predicted = np.array([1, 1, 0, 0])
    truth = np.array([1, 0, 0, 1])
    assert f1_score(predicted, truth) == 0.5


def test_macro_f1_for_three_classes() -> None:
    truth = np.array([0, 1, 2, 2])
    assert f1_score(truth, truth) == 1.0


def test_classifier_drop_is_against_the_original_score() -> None:
    truth = np.array([0, 1, 1, 0, 1])
    original = Prediction(labels=np.array([0, 1, 1, 0, 0]), scores=None)  # 0.8 accurate
    baseline = Baseline(original, "accuracy", 0.8, 1.0)
    variant = Prediction(labels=np.array([0, 1, 0, 0, 0]), scores=None)  # 0.6 accurate
    quality, drop, agreement = _quality(variant, baseline, truth)
    assert quality["accuracy"] == 0.6 and abs(drop - 0.2) < 1e-9 and agreement == 0.8


def test_without_labels_the_drop_is_disagreement() -> None:
    baseline = Baseline(
        Prediction(labels=np.array([0, 1, 2, 3]), scores=None), "accuracy", None, 1.0
    )
    _, drop, agreement = _quality(
        Prediction(labels=np.array([0, 1, 2, 0]), scores=None), baseline, None
    )
    assert agreement == 0.75 and drop == 0.25


def test_regression_drop_is_rmse_increase_over_the_target_spread() -> None:
    truth = np.array([[0.0], [2.0], [4.0], [6.0]])  # std sqrt(5)
    original = Prediction(labels=None, scores=truth.copy())
    baseline = Baseline(original, "rmse", 0.0, float(np.std(truth)))
    quality, drop, agreement = _quality(
        Prediction(labels=None, scores=truth + 0.1), baseline, truth
    )
    assert abs(quality["rmse"] - 0.1) < 1e-9  # type: ignore[operator]
    assert abs(drop - 0.1 / np.sqrt(5)) < 1e-9 and agreement == 0.0
