"""Joining labels with predictions: extraction, bounded memory, counters."""

from __future__ import annotations

import numpy as np
import pytest
from modelship_runtime.server.errors import BadRequest
from modelship_runtime.server.feedback import (
    PredictionLog,
    apply_feedback,
    extract_prediction,
    held_bytes,
    parse_feedback,
)
from modelship_runtime.server.metrics import RuntimeMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _value(metrics: RuntimeMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        name, {"model": "m", "revision": "1", "variant": "model"}
    )
    assert value is not None
    return value


def test_extraction_argmax_label_and_regression() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)
    assert extract_prediction(scores, "auto", 10, 0).values == (1, 0)  # type: ignore[union-attr]
    labels = np.array([3, 4], np.int64)
    prediction = extract_prediction(labels, "auto", 10, 0)
    assert prediction is not None and prediction.task == "classification"
    values = np.array([[1.5], [2.5]], np.float32)
    regression = extract_prediction(values, "auto", 10, 0)
    assert regression is not None and regression.task == "regression"
    assert extract_prediction(values, "auto", 1, 0) is None  # too many rows to keep


def test_log_is_bounded_by_count_and_age() -> None:
    metrics = RuntimeMetrics("m", "1")
    clock = Clock()
    log = PredictionLog(metrics, max_entries=3, retention_s=60, clock=clock)
    for i in range(5):
        log.record(f"r{i}", extract_prediction(np.array([i]), "auto", 10, clock.now))  # type: ignore[arg-type]
    assert len(log) == 3
    assert log.take("r0") is None and log.take("r4") is not None
    clock.now += 61
    assert log.take("r3") is None  # expired
    assert len(log) == 0
    assert _value(metrics, "modelship_feedback_predictions_evicted_total") == 4


def test_counters_for_classification_and_unknown_ids() -> None:
    metrics = RuntimeMetrics("m", "1")
    log = PredictionLog(metrics, max_entries=10, retention_s=60)
    log.record("a", extract_prediction(np.array([1, 2]), "auto", 10, log.clock()))  # type: ignore[arg-type]
    log.record("b", extract_prediction(np.array(["cat"], dtype=object), "auto", 10, log.clock()))  # type: ignore[arg-type]
    result = apply_feedback(
        log,
        metrics,
        parse_feedback(
            [{"id": "a", "label": [1, 3]}, {"id": "b", "label": "cat"}, {"id": "z", "label": 1}]
        ),
    )
    assert result.as_dict() == {"matched": 2, "unknown": 1, "invalid": 0, "rejected": []}
    assert _value(metrics, "modelship_feedback_predictions_total") == 3
    assert _value(metrics, "modelship_feedback_correct_total") == 2


def test_label_of_the_wrong_length_is_invalid_not_fatal() -> None:
    metrics = RuntimeMetrics("m", "1")
    log = PredictionLog(metrics, max_entries=10, retention_s=60)
    log.record("a", extract_prediction(np.array([1, 2]), "auto", 10, log.clock()))  # type: ignore[arg-type]
    result = apply_feedback(log, metrics, parse_feedback({"id": "a", "label": 1}))
    assert result.invalid == 1
    assert result.rejected == [{"index": 0, "reason": "label"}]


@pytest.mark.parametrize(
    "body",
    [
        [],
        3,
        {"id": "a"},
        [{"id": 1, "label": 2}],
        "x",
        {"token": "t"},
        {"token": 5, "label": 1},
        {"id": "a", "token": "t", "label": 1},
    ],
)
def test_malformed_feedback_bodies(body: object) -> None:
    with pytest.raises(BadRequest):
        parse_feedback(body)


def test_held_predictions_are_bounded_in_bytes_not_only_in_entries() -> None:
    metrics = RuntimeMetrics("m", "r")
    clock = Clock()
    wide = np.arange(1000, dtype=np.float32)  # one prediction of 1000 rows
    cost = held_bytes("r0", extract_prediction(wide, "auto", 1000, 0.0))  # type: ignore[arg-type]
    log = PredictionLog(metrics, max_entries=1000, retention_s=60, max_bytes=3 * cost, clock=clock)
    for i in range(10):
        log.record(f"r{i}", extract_prediction(wide, "auto", 1000, clock.now))  # type: ignore[arg-type]
    # Far under the entry limit, but only three of these fit the byte bound: the oldest went.
    assert len(log) == 3 and log.bytes <= 3 * cost
    assert log.take("r6") is None and log.take("r9") is not None
    assert metrics.predictions_held_bytes.value == log.bytes == 2 * cost
    assert metrics.predictions_evicted.value == 7
    # A thousand-row float prediction is estimated at tens of kilobytes, not a few hundred bytes.
    assert cost > 30_000
