"""Validation of a variant against the original: quality, agreement, latency, throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelship_runtime.build.conversion import ConvertedModel, OutputRoles, Prediction, Reference
from modelship_runtime.build.datasets import Dataset
from modelship_runtime.build.errors import ValidationFailure
from modelship_runtime.build.manifest import VariantMetrics
from modelship_runtime.build.runner import GraphOptimization, make_session, run_session

Metric = Literal["accuracy", "f1", "rmse"]
EVAL_BATCH = 256
# A regression output "agrees" when within this fraction of the reference outputs' spread.
AGREEMENT_TOLERANCE = 0.01


class TimingBudget(BaseModel):
    """How long to measure each variant; the benchmark raises these, tests keep them short."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_runs: int = Field(default=20, ge=0)
    min_runs: int = Field(default=50, ge=1)
    max_runs: int = Field(default=2000, ge=1)
    latency_seconds: float = Field(default=1.0, gt=0)
    throughput_seconds: float = Field(default=0.5, gt=0)
    throughput_batch: int = Field(default=64, ge=1)


@dataclass(frozen=True)
class Baseline:
    """The original's predictions and score on the validation set, computed once."""

    prediction: Prediction
    metric: Metric
    score: float | None  # None when there are no labels: agreement with the original is the score
    scale: float  # spread used to normalize regression errors


@dataclass(frozen=True)
class Evaluation:
    metrics: VariantMetrics
    passed: bool
    reason: str | None


def choose_metric(converted: ConvertedModel, requested: Metric | None, dataset: Dataset) -> Metric:
    if requested is not None:
        return requested
    if converted.task == "classifier":
        return "accuracy"
    if converted.task == "regressor":
        return "rmse"
    labels = dataset.labels
    if labels is not None:
        # Integer labels: the outputs are class scores (e.g. a network's logits).
        return "accuracy" if labels.dtype.kind in "iub" and labels.ndim == 1 else "rmse"
    # No labels: an [N, K>1] float output is taken as class scores and compared by argmax;
    # --validation-metric rmse compares the values instead (multi-output regressors).
    scores = next(
        (o for o in converted.signature.outputs if o.name == converted.roles.scores), None
    )
    if converted.roles.label or (
        scores is not None and len(scores.shape) == 2 and scores.shape[1] > 1
    ):
        return "accuracy"
    return "rmse"


def predict_all(predict: Any, dataset: Dataset) -> Prediction:
    labels: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for start in range(0, dataset.rows, EVAL_BATCH):
        part: Prediction = predict(dataset.batch(start, start + EVAL_BATCH))
        if part.labels is not None:
            labels.append(np.asarray(part.labels).reshape(-1))
        if part.scores is not None:
            scores.append(
                np.asarray(part.scores).reshape(
                    len(next(iter(dataset.batch(start, start + EVAL_BATCH).values()))), -1
                )
            )
    return Prediction(
        labels=np.concatenate(labels) if labels else None,
        scores=np.concatenate(scores) if scores else None,
    )


def _accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return (
        float(np.mean(predicted.astype(str) == truth.astype(str)))
        if predicted.dtype != truth.dtype
        else float(np.mean(predicted == truth))
    )


def f1_score(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Binary F1 for two classes (the larger label positive), macro F1 otherwise."""
    predicted, truth = predicted.astype(str), truth.astype(str)
    classes = sorted(set(truth.tolist()) | set(predicted.tolist()))
    if len(classes) <= 2:
        classes = classes[-1:]
    scores = []
    for cls in classes:
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        fp = float(np.sum((predicted == cls) & (truth != cls)))
        fn = float(np.sum((predicted != cls) & (truth == cls)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _labels_score(metric: Metric, predicted: np.ndarray, truth: np.ndarray) -> float:
    return f1_score(predicted, truth) if metric == "f1" else _accuracy(predicted, truth)


def baseline_of(reference: Reference, dataset: Dataset, metric: Metric) -> Baseline:
    try:
        prediction = predict_all(reference.predict, dataset)
    except ValidationFailure:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationFailure(
            f"{reference.description} failed on the validation inputs: {first}"
        ) from exc
    labels = dataset.labels
    if metric in {"accuracy", "f1"}:
        if prediction.labels is None:
            raise ValidationFailure(
                f"--validation-metric {metric} needs class predictions; "
                "the model outputs none (use rmse)"
            )
        if labels is not None and labels.reshape(-1).shape != prediction.labels.shape:
            raise ValidationFailure(
                f"{dataset.origin}: labels have shape {labels.shape}, "
                f"the model predicts {prediction.labels.shape}"
            )
        score = (
            None if labels is None else _labels_score(metric, prediction.labels, labels.reshape(-1))
        )
        return Baseline(prediction, metric, score, 1.0)
    if prediction.scores is None:
        raise ValidationFailure(
            "--validation-metric rmse needs numeric outputs; the model has none"
        )
    if labels is not None:
        if labels.size != prediction.scores.size:
            raise ValidationFailure(
                f"{dataset.origin}: labels have shape {labels.shape}, "
                f"the model outputs {prediction.scores.shape}"
            )
        target = labels.reshape(prediction.scores.shape)
        scale = float(np.std(target)) or 1.0
        return Baseline(prediction, metric, _rmse(prediction.scores, target), scale)
    scale = float(np.std(prediction.scores)) or 1.0
    return Baseline(prediction, metric, None, scale)


def _quality(
    variant: Prediction, baseline: Baseline, labels: np.ndarray | None
) -> tuple[dict[str, float | None], float, float]:
    """Metrics, the score drop versus the original, and agreement with the original."""
    ref = baseline.prediction
    out: dict[str, float | None] = {
        "accuracy": None,
        "f1": None,
        "rmse": None,
        "max_abs_diff": None,
        "score": None,
    }
    if (
        ref.scores is not None
        and variant.scores is not None
        and ref.scores.size == variant.scores.size
    ):
        out["max_abs_diff"] = float(
            np.max(
                np.abs(
                    variant.scores.astype(np.float64)
                    - ref.scores.astype(np.float64).reshape(variant.scores.shape)
                )
            )
        )
    if baseline.metric in {"accuracy", "f1"}:
        if variant.labels is None or ref.labels is None:
            raise ValidationFailure("the variant predicts no classes")
        agreement = _accuracy(variant.labels, ref.labels)
        if labels is not None:
            truth = labels.reshape(-1)
            out["accuracy"] = _accuracy(variant.labels, truth)
            out["f1"] = f1_score(variant.labels, truth)
            out["score"] = out[baseline.metric]
            drop = float(baseline.score or 0.0) - float(out["score"] or 0.0)
        else:
            out["score"] = agreement
            drop = 1.0 - agreement
        return out, drop, agreement
    assert variant.scores is not None and ref.scores is not None
    got = variant.scores.astype(np.float64).reshape(ref.scores.shape)
    rows_close = np.all(
        np.abs(got - ref.scores) <= AGREEMENT_TOLERANCE * baseline.scale + 1e-6, axis=1
    )
    agreement = float(np.mean(rows_close))
    if labels is not None:
        rmse = _rmse(got, labels.reshape(got.shape))
        drop = (rmse - float(baseline.score or 0.0)) / baseline.scale
    else:
        rmse = _rmse(got, ref.scores)
        drop = rmse / baseline.scale
    out["rmse"] = out["score"] = rmse
    return out, drop, agreement


def measure_speed(
    session: Any, dataset: Dataset, budget: TimingBudget
) -> tuple[float, float, float]:
    """p50 and p99 latency (ms) at batch 1, and samples per second at the throughput batch."""
    rows = dataset.rows
    singles = [dataset.batch(i, i + 1) for i in range(min(rows, 64))]
    for i in range(budget.warmup_runs):
        session.run(None, singles[i % len(singles)])
    timings: list[float] = []
    deadline = time.perf_counter() + budget.latency_seconds
    while len(timings) < budget.max_runs and (
        len(timings) < budget.min_runs or time.perf_counter() < deadline
    ):
        feed = singles[len(timings) % len(singles)]
        started = time.perf_counter()
        session.run(None, feed)
        timings.append(time.perf_counter() - started)
    p50, p99 = (float(v) * 1000 for v in np.percentile(timings, [50, 99]))
    batch = min(budget.throughput_batch, rows)
    feed = dataset.batch(0, batch)
    session.run(None, feed)
    done = 0
    started = time.perf_counter()
    while done == 0 or time.perf_counter() - started < budget.throughput_seconds:
        session.run(None, feed)
        done += batch
    throughput = done / (time.perf_counter() - started)
    return p50, p99, throughput


def evaluate_variant(
    path: Path,
    roles: OutputRoles,
    dataset: Dataset,
    baseline: Baseline,
    *,
    max_drop: float,
    level: GraphOptimization,
    budget: TimingBudget,
) -> Evaluation:
    """Run the variant on every validation row, compare with the original, then time it."""
    session = make_session(path, level=level, threads=1)

    def predict(inputs: dict[str, np.ndarray]) -> Prediction:
        return roles.interpret(run_session(session, inputs))

    prediction = predict_all(predict, dataset)
    for array in (prediction.scores,):
        if array is not None and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            return _failed(dataset, "outputs contain NaN or infinity")
    quality, drop, agreement = _quality(prediction, baseline, dataset.labels)
    p50, p99, throughput = measure_speed(session, dataset, budget)
    metrics = VariantMetrics(
        samples=dataset.rows,
        agreement=agreement,
        accuracy=quality["accuracy"],
        f1=quality["f1"],
        rmse=quality["rmse"],
        max_abs_diff=quality["max_abs_diff"],
        score=quality["score"],
        accuracy_drop=drop,
        p50_ms=p50,
        p99_ms=p99,
        throughput_per_sec=throughput,
    )
    if drop > max_drop + 1e-12:
        return Evaluation(metrics, False, f"{baseline.metric} drop {drop:.4f} > max {max_drop:g}")
    return Evaluation(metrics, True, None)


def _failed(dataset: Dataset, reason: str) -> Evaluation:
    metrics = VariantMetrics(
        samples=dataset.rows,
        agreement=0.0,
        accuracy_drop=float("inf"),
        p50_ms=0.0,
        p99_ms=0.0,
        throughput_per_sec=0.0,
    )
    return Evaluation(metrics, False, reason)
