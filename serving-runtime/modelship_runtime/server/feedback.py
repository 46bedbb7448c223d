"""Joining delayed labels with their predictions, by id or signed token, into accuracy counters."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelship_runtime.server.errors import BadRequest
from modelship_runtime.server.metrics import AccuracyCounters, RuntimeMetrics
from modelship_runtime.server.settings import FeedbackTask
from modelship_runtime.server.tokens import (
    Claims,
    Scalar,
    SeenTokens,
    StringDigest,
    TokenCodec,
    TokenRejected,
)


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
    if flat.shape[1] == 0:
        return None  # rows without values: nothing to compare a label with
    if flat.shape[1] == 1:
        column = flat[:, 0]
        # Every request pays this when tokens are on: numbers convert in one call.
        numeric = output.dtype.kind in "fiub"
        values = tuple(column.tolist()) if numeric else tuple(_scalar(v) for v in column)
        numeric_float = output.dtype.kind == "f"
        inferred = "regression" if numeric_float else "classification"
    else:
        if output.dtype.kind not in "fiub":
            return None
        values = tuple(np.argmax(flat, axis=1).tolist())
        inferred = "classification"
    chosen = inferred if task == "auto" else task
    return Prediction(chosen, values, now)


def _same_label(prediction: Scalar | StringDigest, label: Any) -> bool:
    if isinstance(prediction, StringDigest):
        return prediction == StringDigest.of(str(label))
    if isinstance(prediction, str) or isinstance(label, str):
        return str(prediction) == str(label)
    return float(prediction) == float(label)


# What one held prediction costs beyond its values, in bytes of Python objects: the ordered
# dict's node, the Prediction, its tuple and the id string's header. An estimate, kept on the
# high side so the byte bound errs towards less memory.
ENTRY_OVERHEAD_BYTES = 320
# A number in the values tuple: its pointer and a float (small ints are shared, floats not).
NUMBER_BYTES = 32
# A string value: its header, plus one byte per character (more for non-ASCII: estimate).
STRING_HEADER_BYTES = 56


def held_bytes(request_id: str, prediction: Prediction) -> int:
    """An estimate of the memory one held prediction takes (see ENTRY_OVERHEAD_BYTES)."""
    values = 0
    for value in prediction.values:
        values += STRING_HEADER_BYTES + len(value) if isinstance(value, str) else NUMBER_BYTES
    return ENTRY_OVERHEAD_BYTES + len(request_id) + values


class PredictionLog:
    """Predictions by request id, oldest first; bounded by count, by (estimated) bytes and by
    age. Ids are the client's and outputs may have many rows: a count alone does not bound
    memory."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        *,
        max_entries: int,
        retention_s: float,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[Prediction, int]] = OrderedDict()
        self._metrics = metrics
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self.clock = clock
        self.bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.retention_s > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        entries = self._entries
        evicted = 0
        horizon = now - self.retention_s
        while entries:
            oldest, cost = next(iter(entries.values()))
            within = len(entries) <= self.max_entries and self.bytes <= self.max_bytes
            if within and oldest.at >= horizon:
                break
            entries.popitem(last=False)
            self.bytes -= cost
            evicted += 1
        if evicted:
            self._metrics.predictions_evicted.inc(evicted)

    def _publish(self) -> None:
        self._metrics.predictions_held.set(len(self._entries))
        self._metrics.predictions_held_bytes.set(self.bytes)

    def record(self, request_id: str, prediction: Prediction) -> None:
        """Keep `prediction` under `request_id`; a repeated id replaces the older prediction."""
        entries = self._entries
        replaced = entries.pop(request_id, None)
        if replaced is not None:
            self.bytes -= replaced[1]
        cost = held_bytes(request_id, prediction)
        entries[request_id] = (prediction, cost)
        self.bytes += cost
        if (
            len(entries) > self.max_entries
            or self.bytes > self.max_bytes
            or (
                self.retention_s
                and next(iter(entries.values()))[0].at < prediction.at - self.retention_s
            )
        ):
            self._evict(prediction.at)
        self._publish()

    def take(self, request_id: str) -> Prediction | None:
        self._evict(self.clock())
        found = self._entries.pop(request_id, None)
        if found is not None:
            self.bytes -= found[1]
        self._publish()
        return found[0] if found is not None else None


# The answer names the first few labels that did not count, not all: a body may hold thousands.
MAX_REJECTED_SHOWN = 10


@dataclass(slots=True)
class FeedbackResult:
    matched: int = 0
    unknown: int = 0
    invalid: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, index: int, reason: str) -> None:
        self.invalid += 1
        if len(self.rejected) < MAX_REJECTED_SHOWN:
            self.rejected.append({"index": index, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "unknown": self.unknown,
            "invalid": self.invalid,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One label, naming its prediction by request id (this pod's memory) or by signed token."""

    label: Any
    id: str | None = None
    token: str | None = None


class TokenLedger:
    """Verifies prediction tokens and remembers the ones counted, so replays to this pod fail."""

    def __init__(self, codec: TokenCodec, *, retention_s: float, max_seen: int) -> None:
        self.codec = codec
        self.retention_s = retention_s
        self.seen = SeenTokens(max_seen, retention_s)

    def claims(self, token: str) -> Claims:
        claims = self.codec.verify(token, self.retention_s)
        if claims.mac in self.seen:
            raise TokenRejected("replayed")
        return claims

    def counted(self, claims: Claims) -> None:
        self.seen.add(claims, self.codec.clock())


def _labels_for(count: int, label: Any) -> Sequence[Any] | None:
    if isinstance(label, list):
        return label if len(label) == count else None
    return [label] if count == 1 else None


def _valid_label(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | str):
        return True
    return isinstance(value, float) and math.isfinite(value)


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Accept {id|token, label} or a list of them; anything else is a 400 naming the problem."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise BadRequest("feedback body is an empty list; expected {id, label} objects")
    parsed: list[FeedbackItem] = []
    for index, item in enumerate(items):
        where = f"feedback item {index}"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} is not an object with 'id' (or 'token') and 'label'")
        if "id" in item and "token" in item:
            raise BadRequest(f"{where} has both 'id' and 'token'; a label names one prediction")
        key = "token" if "token" in item else "id"
        if key not in item or "label" not in item:
            raise BadRequest(f"{where} needs both '{key}' and 'label'")
        name = item[key]
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{where}: '{key}' must be a non-empty string")
        if key == "token":
            parsed.append(FeedbackItem(item["label"], token=name))
        else:
            parsed.append(FeedbackItem(item["label"], id=name))
    return parsed


@dataclass(frozen=True, slots=True)
class Score:
    """What a batch of labels says of its predictions."""

    correct: int = 0  # classification rows matching their label
    abs_error: float = 0.0  # regression: sum of |prediction - label|
    squared_error: float = 0.0  # regression: sum of (prediction - label)^2


def _score(
    task: str, predicted: Sequence[Scalar | StringDigest], labels: Sequence[Any]
) -> Score | None:
    """The labels' verdict on the predictions, or None when they cannot compare."""
    if not all(_valid_label(v) for v in labels):
        return None
    correct = 0
    abs_error = squared_error = 0.0
    for value, expected in zip(predicted, labels, strict=True):
        if task == "regression":
            if isinstance(expected, str) or isinstance(value, str | StringDigest):
                return None
            error = abs(float(value) - float(expected))
            abs_error += error
            squared_error += error * error
        elif _same_label(value, expected):
            correct += 1
    return Score(correct, abs_error, squared_error)


def _count(counters: AccuracyCounters, task: str, rows: int, score: Score) -> None:
    counters.predictions.inc(rows)
    if task == "regression":
        counters.abs_error.inc(score.abs_error)
        counters.squared_error.inc(score.squared_error)
    else:
        counters.correct.inc(score.correct)


def apply_feedback(
    log: PredictionLog,
    metrics: RuntimeMetrics,
    items: list[FeedbackItem],
    ledger: TokenLedger | None = None,
) -> FeedbackResult:
    """Join each label with its prediction and move the accuracy counters."""
    result = FeedbackResult()
    for index, item in enumerate(items):
        if item.token is not None:
            reason = _apply_token(metrics, ledger, item.token, item.label)
            if reason is None:
                result.matched += 1
            else:
                result.reject(index, reason)
                metrics.feedback_invalid.inc()
            continue
        assert item.id is not None
        prediction = log.take(item.id)
        if prediction is None:
            result.unknown += 1
            metrics.feedback_unknown.inc()
            continue
        labels = _labels_for(len(prediction.values), item.label)
        score = None if labels is None else _score(prediction.task, prediction.values, labels)
        if score is None:
            result.reject(index, "label")
            metrics.feedback_invalid.inc()
            continue
        result.matched += 1
        _count(metrics.own_accuracy, prediction.task, len(prediction.values), score)
    return result


def _apply_token(
    metrics: RuntimeMetrics, ledger: TokenLedger | None, token: str, label: Any
) -> str | None:
    """Count one token's label against the revision and variant it names; else why not."""
    if ledger is None:
        return "tokens_off"
    try:
        claims = ledger.claims(token)
    except TokenRejected as exc:
        return exc.reason
    labels = _labels_for(1, label)
    score = None if labels is None else _score(claims.task, (claims.value,), labels)
    if score is None:
        return "label"
    counters = metrics.accuracy_for(claims.revision, claims.variant)
    if counters is None:
        return "label_sets"
    _count(counters, claims.task, 1, score)
    ledger.counted(claims)
    return None
