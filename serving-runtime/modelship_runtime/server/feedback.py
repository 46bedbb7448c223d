"""Joining delayed labels with earlier predictions, in bounded memory, into accuracy counters."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelship_runtime.server.errors import BadRequest
from modelship_runtime.server.metrics import RuntimeMetrics
from modelship_runtime.server.settings import FeedbackTask

Scalar = int | float | str | bool


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model said for one request: one value per row, and how to compare labels."""

    task: str  # "classification" | "regression"
    values: tuple[Scalar, ...]
    at: float


def _scalar(value: Any) -> Scalar:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        item = value.item()
        return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item
    return value  # type: ignore[no-any-return]


def extract_prediction(
    output: npt.NDArray[Any], task: FeedbackTask, max_rows: int, now: float
) -> Prediction | None:
    """Reduce an output tensor to one value per row: the value itself or the argmax of scores."""
    if output.ndim == 0:
        output = output.reshape(1)
    rows = output.shape[0]
    if rows == 0 or rows > max_rows:
        return None
    flat = output.reshape(rows, -1)
    if flat.shape[1] == 1:
        values = tuple(_scalar(v) for v in flat[:, 0])
        numeric_float = output.dtype.kind == "f"
        inferred = "regression" if numeric_float else "classification"
    else:
        if output.dtype.kind not in "fiub":
            return None
        values = tuple(int(i) for i in np.argmax(flat, axis=1))
        inferred = "classification"
    chosen = inferred if task == "auto" else task
    return Prediction(chosen, values, now)


def _same_label(prediction: Scalar, label: Any) -> bool:
    if isinstance(prediction, str) or isinstance(label, str):
        return str(prediction) == str(label)
    return float(prediction) == float(label)


class PredictionLog:
    """Predictions by request id, oldest first; bounded by count and age."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        *,
        max_entries: int,
        retention_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, Prediction] = OrderedDict()
        self._metrics = metrics
        self.max_entries = max_entries
        self.retention_s = retention_s
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.retention_s > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        entries = self._entries
        evicted = 0
        horizon = now - self.retention_s
        while entries:
            oldest = next(iter(entries.values()))
            if len(entries) <= self.max_entries and oldest.at >= horizon:
                break
            entries.popitem(last=False)
            evicted += 1
        if evicted:
            self._metrics.predictions_evicted.inc(evicted)

    def record(self, request_id: str, prediction: Prediction) -> None:
        """Keep `prediction` under `request_id`; a repeated id replaces the older prediction."""
        entries = self._entries
        entries.pop(request_id, None)
        entries[request_id] = prediction
        if len(entries) > self.max_entries or (
            self.retention_s and next(iter(entries.values())).at < prediction.at - self.retention_s
        ):
            self._evict(prediction.at)
        self._metrics.predictions_held.set(len(entries))

    def take(self, request_id: str) -> Prediction | None:
        self._evict(self.clock())
        found = self._entries.pop(request_id, None)
        self._metrics.predictions_held.set(len(self._entries))
        return found


@dataclass(slots=True)
class FeedbackResult:
    matched: int = 0
    unknown: int = 0
    invalid: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"matched": self.matched, "unknown": self.unknown, "invalid": self.invalid}


def _labels_for(prediction: Prediction, label: Any) -> Sequence[Any] | None:
    count = len(prediction.values)
    if isinstance(label, list):
        return label if len(label) == count else None
    return [label] if count == 1 else None


def _valid_label(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | str):
        return True
    return isinstance(value, float) and math.isfinite(value)


def parse_feedback(body: Any) -> list[tuple[str, Any]]:
    """Accept {id, label} or a list of them; anything else is a 400 naming the problem."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise BadRequest("feedback body is an empty list; expected {id, label} objects")
    parsed: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        where = f"feedback item {index}"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} is not an object with 'id' and 'label'")
        if "id" not in item or "label" not in item:
            raise BadRequest(f"{where} needs both 'id' and 'label'")
        request_id = item["id"]
        if not isinstance(request_id, str) or not request_id:
            raise BadRequest(f"{where}: 'id' must be a non-empty string")
        parsed.append((request_id, item["label"]))
    return parsed


def apply_feedback(
    log: PredictionLog, metrics: RuntimeMetrics, items: list[tuple[str, Any]]
) -> FeedbackResult:
    """Join each label with its prediction and move the accuracy counters."""
    result = FeedbackResult()
    for request_id, label in items:
        prediction = log.take(request_id)
        if prediction is None:
            result.unknown += 1
            metrics.feedback_unknown.inc()
            continue
        labels = _labels_for(prediction, label)
        if labels is None or not all(_valid_label(v) for v in labels):
            result.invalid += 1
            metrics.feedback_invalid.inc()
            continue
        correct = 0
        abs_error = 0.0
        for predicted, expected in zip(prediction.values, labels, strict=True):
            if prediction.task == "regression":
                if isinstance(expected, str) or isinstance(predicted, str):
                    result.invalid += 1
                    metrics.feedback_invalid.inc()
                    break
                abs_error += abs(float(predicted) - float(expected))
            elif _same_label(predicted, expected):
                correct += 1
        else:
            result.matched += 1
            metrics.feedback_total.inc(len(labels))
            if prediction.task == "regression":
                metrics.feedback_abs_error.inc(abs_error)
            else:
                metrics.feedback_correct.inc(correct)
    return result
