"""Canary verdicts, pure: each check, each interval, and the rollout's next move."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypedDict

from modelship import api
from modelship.analysis import statistics
from modelship.analysis.statistics import Histogram

Verdict = Literal["Pass", "Fail", "Inconclusive"]
# Why a check is Inconclusive. The first three mean the evidence is missing; "undecided" means
# the evidence is there, and sufficient in size, but does not settle the question.
Cause = Literal["no-data", "query-error", "too-few-samples", "undecided"]
Action = Literal["Continue", "Advance", "Promote", "RollBack", "Pause"]
OnInconclusive = Literal["pause", "rollback"]

MISSING_EVIDENCE: frozenset[Cause] = frozenset({"no-data", "query-error", "too-few-samples"})

DEFAULT_MIN_REQUESTS = 100
DEFAULT_MIN_LABELLED_SAMPLES = 100
DEFAULT_ALPHA = 0.05
DEFAULT_INCONCLUSIVE_LIMIT = 3

# A built-in check is named after the spec field that turns it on (camelCase): a human finds the
# knob from the status, and no user metric (a lowercase DNS label) can take the same name.
P99_MAX = "maxP99LatencyMs"
P99_VS_STABLE = "maxP99LatencyIncreaseVsStable"
ERROR_RATE_MAX = "maxErrorRate"
ERROR_RATE_VS_STABLE = "maxErrorRateIncreaseVsStable"
ACCURACY_MIN = "minAccuracy"
ACCURACY_DROP_VS_STABLE = "maxAccuracyDropVsStable"
MAE_MAX = "maxMeanAbsoluteError"
MAE_VS_STABLE = "maxMeanAbsoluteErrorIncreaseVsStable"


# --- readings (the data passed in) --------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One measurement: a value (None: no data), the samples behind it, or the query's error.

    For a proportion the value is the ratio and `samples` its denominator (requests, labels); for
    a p99 the value is in seconds and `samples` the requests in the histogram. A raw count query
    leaves `samples` unset. `Measurement()` is "the query returned nothing".
    """

    value: float | None = None
    samples: int | None = None
    error: str | None = None
    variance: float | None = None  # of the values behind a mean (MAE): its test needs it


@dataclass(frozen=True)
class HistogramMeasurement:
    """The result of a latency-buckets query."""

    histogram: Histogram | None = None
    error: str | None = None


@dataclass(frozen=True)
class RevisionMeasurements:
    """Raw results of one revision's queries (fields as in queries.RevisionQueries)."""

    requests: Measurement = field(default_factory=Measurement)
    server_errors: Measurement = field(default_factory=Measurement)
    p99_seconds: Measurement = field(default_factory=Measurement)
    latency_buckets: HistogramMeasurement = field(default_factory=HistogramMeasurement)
    predictions: Measurement = field(default_factory=Measurement)
    correct: Measurement = field(default_factory=Measurement)
    absolute_error: Measurement = field(default_factory=Measurement)
    squared_error: Measurement = field(default_factory=Measurement)


def ratio(numerator: Measurement, denominator: Measurement) -> Measurement:
    """Combine two raw counts into a proportion reading (value = ratio, samples = denominator)."""
    error = _join_errors(numerator.error, denominator.error)
    if error is not None:
        return Measurement(error=error)
    total = _finite(denominator.value)
    if total is None:
        return Measurement()
    samples = _count(total)
    part = _finite(numerator.value)
    if part is None or samples == 0:
        return Measurement(samples=samples)
    return Measurement(value=min(max(part / total, 0.0), 1.0), samples=samples)


def mean_measurement(total: Measurement, squares: Measurement, count: Measurement) -> Measurement:
    """A mean of `count` values from their sum and sum of squares (value = mean, samples =
    count, variance = the values' sample variance)."""
    error = _join_errors(total.error, squares.error, count.error)
    if error is not None:
        return Measurement(error=error)
    n = _finite(count.value)
    if n is None:
        return Measurement()
    samples = _count(n)
    part, square = _finite(total.value), _finite(squares.value)
    if part is None or square is None or samples == 0:
        return Measurement(samples=samples)
    mean = max(part, 0.0) / samples
    spread = max(square / samples - mean * mean, 0.0) * samples / max(samples - 1, 1)
    return Measurement(value=mean, samples=samples, variance=spread)


def p99_measurement(p99: Measurement, buckets: HistogramMeasurement) -> Measurement:
    """The p99 with the number of requests it was computed from (the histogram's total)."""
    error = _join_errors(p99.error, buckets.error)
    if error is not None:
        return Measurement(error=error)
    samples = buckets.histogram.total if buckets.histogram is not None else None
    return Measurement(value=p99.value, samples=samples)


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check, with the figures a human reads in status."""

    name: str
    verdict: Verdict
    reason: str
    value: float | None = None  # the canary's measurement (ms, ratio, or the metric's unit)
    baseline: float | None = None  # stable's, for checks relative to stable
    threshold: float | None = None  # the limit `value` was held to (resolved for relative ones)
    samples: int | None = None  # the canary's requests or labels
    baseline_samples: int | None = None
    p_value: float | None = None
    cause: Cause | None = None  # set when Inconclusive


@dataclass(frozen=True)
class IntervalVerdict:
    """The verdict of one analysis interval over all its checks."""

    verdict: Verdict
    reason: str
    results: tuple[CheckResult, ...]
    failed: tuple[str, ...] = ()
    inconclusive: tuple[str, ...] = ()
    no_data: int = 0
    query_errors: int = 0
    too_few_samples: int = 0
    undecided: int = 0

    @property
    def evidence_missing(self) -> bool:
        """Some check lacked data (no data, query error, too few samples)."""
        return self.no_data + self.query_errors + self.too_few_samples > 0


# --- policy: thresholds and limits --------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What the checks and decisions hold the canary to; a threshold of None turns its check off.

    `alpha` bounds the chance that one interval fails a canary that is within every limit: each
    of the interval's statistical checks runs at `check_alpha` (Bonferroni over them).
    """

    max_p99_latency_ms: float | None = None
    max_p99_latency_increase_vs_stable: float | None = None  # 0.2: up to 20% slower than stable
    max_error_rate: float | None = None
    max_error_rate_increase_vs_stable: float | None = None  # 0.005: up to +0.5 points
    min_accuracy: float | None = None
    max_accuracy_drop_vs_stable: float | None = None
    max_mean_absolute_error: float | None = None
    max_mean_absolute_error_increase_vs_stable: float | None = None  # 0.1: up to 10% larger
    metrics: tuple[api.AnalysisMetric, ...] = ()
    min_requests: int = DEFAULT_MIN_REQUESTS
    min_labelled_samples: int = DEFAULT_MIN_LABELLED_SAMPLES
    alpha: float = DEFAULT_ALPHA
    failure_limit: int = 2
    inconclusive_limit: int = DEFAULT_INCONCLUSIVE_LIMIT
    on_inconclusive: OnInconclusive = "pause"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        for name in ("min_requests", "min_labelled_samples", "failure_limit", "inconclusive_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def statistical_checks(self) -> int:
        """The built-in checks turned on: each judges noisy counts with a test. User metrics
        are compared as they are, with no test, so they take no share of alpha."""
        return sum(
            threshold is not None
            for threshold in (
                self.max_p99_latency_ms,
                self.max_p99_latency_increase_vs_stable,
                self.max_error_rate,
                self.max_error_rate_increase_vs_stable,
                self.min_accuracy,
                self.max_accuracy_drop_vs_stable,
                self.max_mean_absolute_error,
                self.max_mean_absolute_error_increase_vs_stable,
            )
        )

    @property
    def check_alpha(self) -> float:
        """The level of each statistical check of an interval."""
        return statistics.corrected_alpha(self.alpha, self.statistical_checks)

    @classmethod
    def from_analysis(
        cls,
        analysis: api.Analysis,
        *,
        alpha: float = DEFAULT_ALPHA,
    ) -> Policy:
        """Resolve the policy of spec.rollout.analysis."""
        return cls(
            max_p99_latency_ms=analysis.max_p99_latency_ms,
            max_p99_latency_increase_vs_stable=analysis.max_p99_latency_increase_vs_stable,
            max_error_rate=analysis.max_error_rate,
            max_error_rate_increase_vs_stable=analysis.max_error_rate_increase_vs_stable,
            min_accuracy=analysis.min_accuracy,
            max_accuracy_drop_vs_stable=analysis.max_accuracy_drop_vs_stable,
            max_mean_absolute_error=analysis.max_mean_absolute_error,
            max_mean_absolute_error_increase_vs_stable=(
                analysis.max_mean_absolute_error_increase_vs_stable
            ),
            metrics=tuple(analysis.metrics),
            min_requests=analysis.min_requests,
            min_labelled_samples=analysis.min_labelled_samples,
            alpha=alpha,
            failure_limit=analysis.failure_limit,
            inconclusive_limit=analysis.inconclusive_limit,
            on_inconclusive=analysis.on_inconclusive,
        )


# --- the built-in checks ------------------------------------------------------------------


def check_p99_max(
    canary: Measurement,
    *,
    buckets: HistogramMeasurement,
    max_ms: float,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's p99 against an absolute ceiling.

    Pass on the p99 at or under the ceiling. Over it fails only when significantly more than 1%
    of the canary's requests are slower than the ceiling (statistics.tail_exceeds, at the bucket
    bound at or above it); over it without that evidence is Inconclusive.
    """
    name = P99_MAX
    unusable = _unusable(
        name,
        canary,
        min_samples=min_requests,
        unit="requests",
        what="p99 latency",
        threshold=max_ms,
    )
    if unusable is not None:
        return unusable
    assert canary.value is not None
    ms = canary.value * 1000
    base = _base(name, value=ms, threshold=max_ms, samples=canary.samples)
    if ms <= max_ms:
        return _passed(base, f"p99 {_ms(ms)} <= {_ms(max_ms)} ({canary.samples} requests)")
    return _judge_tail(
        base,
        f"p99 {_ms(ms)} > {_ms(max_ms)}",
        alpha,
        buckets=(buckets,),
        test=lambda histograms: statistics.tail_exceeds(histograms[0], max_ms / 1000),
        describe=lambda tail: (
            f"{_pct(tail.canary_above / tail.canary_total)} of {tail.canary_total} requests "
            f"slower than {_ms(tail.bound * 1000)}"
        ),
    )


def check_p99_vs_stable(
    canary: Measurement,
    stable: Measurement,
    *,
    canary_buckets: HistogramMeasurement,
    stable_buckets: HistogramMeasurement,
    max_increase: float,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's p99 against stable's plus a tolerance, the tolerance inside the test.

    p99s are interpolated within buckets and noisy: a canary over the limit fails only when
    significantly more than 1% of its requests are slower than the limit, and a significantly
    greater share than of stable's (statistics.compare_tails, at the bucket bound at or above the
    limit). Over the limit without that evidence is Inconclusive.
    """
    name = P99_VS_STABLE
    unusable = _unusable_pair(
        name, canary, stable, min_samples=min_requests, unit="requests", what="p99 latency"
    )
    if unusable is not None:
        return unusable
    assert canary.value is not None and stable.value is not None
    c_ms, s_ms = canary.value * 1000, stable.value * 1000
    limit = s_ms * (1 + max_increase)
    base = _base(
        name,
        value=c_ms,
        baseline=s_ms,
        threshold=limit,
        samples=canary.samples,
        baseline_samples=stable.samples,
    )
    versus = f"p99 {_ms(c_ms)} vs stable {_ms(s_ms)}"
    allowed = f"{_ms(limit)} (stable +{_pct(max_increase)})"
    if c_ms <= limit:
        return _passed(base, f"{versus}: <= {allowed}")
    return _judge_tail(
        base,
        f"{versus}: > {allowed}",
        alpha,
        buckets=(canary_buckets, stable_buckets),
        test=lambda pair: statistics.compare_tails(pair[0], pair[1], limit / 1000),
        describe=lambda tail: (
            f"{_pct(tail.canary_above / tail.canary_total)} vs "
            f"{_pct(tail.stable_above / tail.stable_total)} of requests slower than "
            f"{_ms(tail.bound * 1000)}"
        ),
    )


def check_error_rate_max(
    canary: Measurement,
    *,
    max_rate: float,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's error ratio (failed requests, 4xx and 5xx) against a ceiling.

    Pass on the estimate at or under the ceiling; Fail only when the Wilson one-sided (1 - alpha)
    lower bound is above it; in between (over it, but within noise) Inconclusive.
    """
    name = ERROR_RATE_MAX
    unusable = _unusable(
        name,
        canary,
        min_samples=min_requests,
        unit="requests",
        what="error ratio",
        threshold=max_rate,
    )
    if unusable is not None:
        return unusable
    errors, n, rate = _proportion(canary)
    base = _base(name, value=rate, threshold=max_rate, samples=n)
    measured = f"error ratio {_pct(rate)} ({errors} of {n} requests)"
    if rate <= max_rate:
        return _passed(base, f"{measured} <= {_pct(max_rate)}")
    low = statistics.wilson_interval(errors, n, 1 - 2 * alpha).low
    if low > max_rate:
        return _failed(base, f"{measured} > {_pct(max_rate)} (lower bound {_pct(low)})")
    return _undecided(
        base, f"{measured} > {_pct(max_rate)}, not conclusively: lower bound {_pct(low)}"
    )


def check_error_rate_vs_stable(
    canary: Measurement,
    stable: Measurement,
    *,
    max_increase: float,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's error ratio against stable's plus a margin (in ratio points).

    Over the margin fails only when the test of "greater than stable's by more than the margin"
    (statistics.difference_exceeds, the margin inside the test) gives p < alpha; otherwise
    Inconclusive.
    """
    name = ERROR_RATE_VS_STABLE
    unusable = _unusable_pair(
        name, canary, stable, min_samples=min_requests, unit="requests", what="error ratio"
    )
    if unusable is not None:
        return unusable
    (c_err, c_n, c_rate), (s_err, s_n, s_rate) = _proportion(canary), _proportion(stable)
    increase = c_rate - s_rate
    base = _base(
        name,
        value=c_rate,
        baseline=s_rate,
        threshold=s_rate + max_increase,
        samples=c_n,
        baseline_samples=s_n,
    )
    versus = (
        f"error ratio {_pct(c_rate)} ({c_err} of {c_n}) vs stable {_pct(s_rate)} ({s_err} of {s_n})"
    )
    if increase <= max_increase:
        return _passed(base, f"{versus}: {_points(increase)} <= {_points(max_increase)}")
    test = statistics.difference_exceeds(c_err, c_n, s_err, s_n, max_increase)
    return _judged(
        base, f"{versus}: {_points(increase)} > {_points(max_increase)}", test.p_value, alpha
    )


def check_accuracy_min(
    canary: Measurement,
    *,
    min_accuracy: float,
    min_labels: int = DEFAULT_MIN_LABELLED_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's accuracy from delayed labels against a floor; passing needs evidence.

    Never judged on fewer than `min_labels` labels. Pass when the Wilson one-sided (1 - alpha)
    lower bound is at or above the floor; Fail when the upper bound is below it; in between the
    labels do not tell yet: Inconclusive (more labels narrow the bounds).
    """
    name = ACCURACY_MIN
    unusable = _unusable(
        name, canary, min_samples=min_labels, unit="labels", what="accuracy", threshold=min_accuracy
    )
    if unusable is not None:
        return unusable
    correct, n, accuracy = _proportion(canary)
    base = _base(name, value=accuracy, threshold=min_accuracy, samples=n)
    measured = f"accuracy {_pct(accuracy)} ({correct} of {n} labels)"
    bounds = statistics.wilson_interval(correct, n, 1 - 2 * alpha)
    if bounds.low >= min_accuracy:
        return _passed(base, f"{measured} >= {_pct(min_accuracy)} (lower bound {_pct(bounds.low)})")
    if bounds.high < min_accuracy:
        return _failed(base, f"{measured} < {_pct(min_accuracy)} (upper bound {_pct(bounds.high)})")
    return _undecided(
        base,
        f"{measured}, {_pct(bounds.low)} to {_pct(bounds.high)}: not shown on either side of "
        f"{_pct(min_accuracy)} yet",
    )


def check_accuracy_drop_vs_stable(
    canary: Measurement,
    stable: Measurement,
    *,
    max_drop: float,
    min_labels: int = DEFAULT_MIN_LABELLED_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """The canary's accuracy against stable's minus a tolerated drop; passing needs evidence.

    On the shares of wrong predictions, the margin inside both tests
    (statistics.difference_exceeds): Fail when the canary is shown less accurate than stable by
    more than the drop; Pass when it is shown less accurate by less than the drop (a
    non-inferiority test); else Inconclusive.
    """
    name = ACCURACY_DROP_VS_STABLE
    unusable = _unusable_pair(
        name, canary, stable, min_samples=min_labels, unit="labels", what="accuracy"
    )
    if unusable is not None:
        return unusable
    (c_ok, c_n, c_acc), (s_ok, s_n, s_acc) = _proportion(canary), _proportion(stable)
    base = _base(
        name,
        value=c_acc,
        baseline=s_acc,
        threshold=s_acc - max_drop,
        samples=c_n,
        baseline_samples=s_n,
    )
    versus = f"accuracy {_pct(c_acc)} ({c_ok} of {c_n}) vs stable {_pct(s_acc)} ({s_ok} of {s_n})"
    c_wrong, s_wrong = c_n - c_ok, s_n - s_ok
    worse = statistics.difference_exceeds(c_wrong, c_n, s_wrong, s_n, max_drop).p_value
    within = statistics.difference_exceeds(s_wrong, s_n, c_wrong, c_n, -max_drop).p_value
    return _two_sided(
        base,
        f"{versus}: drop {_points(s_acc - c_acc)}",
        limit=f"{_points(max_drop)}",
        p_bad=worse,
        p_good=within,
        alpha=alpha,
    )


def check_mae_max(
    canary: Measurement,
    *,
    max_mae: float,
    min_labels: int = DEFAULT_MIN_LABELLED_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """A regression canary's mean absolute error against a ceiling; passing needs evidence.

    Large-sample z-tests of the mean (its variance from the sum of squared errors): Pass when
    shown below the ceiling, Fail when shown above it, else Inconclusive.
    """
    name = MAE_MAX
    unusable = _unusable(
        name,
        canary,
        min_samples=min_labels,
        unit="labels",
        what="mean absolute error",
        threshold=max_mae,
    )
    if unusable is not None:
        return unusable
    assert canary.value is not None and canary.samples is not None
    mae, n = canary.value, canary.samples
    base = _base(name, value=mae, threshold=max_mae, samples=n)
    test = statistics.mean_versus(mae, canary.variance or 0.0, n, max_mae)
    return _two_sided(
        base,
        f"MAE {_g(mae)} ({n} labels)",
        limit=_g(max_mae),
        p_bad=test.p_above,
        p_good=test.p_below,
        alpha=alpha,
    )


def check_mae_vs_stable(
    canary: Measurement,
    stable: Measurement,
    *,
    max_increase: float,
    min_labels: int = DEFAULT_MIN_LABELLED_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """A regression canary's MAE against stable's times (1 + tolerance), the tolerance inside
    the tests (Welch z-tests of MAE_canary - (1 + tolerance) x MAE_stable); passing needs
    evidence."""
    name = MAE_VS_STABLE
    unusable = _unusable_pair(
        name, canary, stable, min_samples=min_labels, unit="labels", what="mean absolute error"
    )
    if unusable is not None:
        return unusable
    assert canary.value is not None and canary.samples is not None
    assert stable.value is not None and stable.samples is not None
    ratio = 1 + max_increase
    base = _base(
        name,
        value=canary.value,
        baseline=stable.value,
        threshold=stable.value * ratio,
        samples=canary.samples,
        baseline_samples=stable.samples,
    )
    test = statistics.ratio_of_means_versus(
        (canary.value, canary.variance or 0.0, canary.samples),
        (stable.value, stable.variance or 0.0, stable.samples),
        ratio,
    )
    return _two_sided(
        base,
        f"MAE {_g(canary.value)} ({canary.samples} labels) vs stable {_g(stable.value)} "
        f"({stable.samples} labels)",
        limit=f"{_g(stable.value * ratio)} (stable +{_pct(max_increase)})",
        p_bad=test.p_above,
        p_good=test.p_below,
        alpha=alpha,
    )


def check_metric(metric: api.AnalysisMetric, reading: Measurement) -> CheckResult:
    """A user metric against its min and/or max (both inclusive)."""
    base = _base(metric.name, threshold=metric.max if metric.max is not None else metric.min)
    if reading.error is not None:
        return _undecided(base, f"query error: {reading.error}", "query-error")
    if reading.value is None:
        return _undecided(base, "no data", "no-data")
    value = reading.value
    if math.isnan(value):
        return _undecided(base, "no data: the query returned NaN", "no-data")
    base = replace(base, value=value)
    if metric.max is not None and value > metric.max:
        return _failed(replace(base, threshold=metric.max), f"{_g(value)} > max {_g(metric.max)}")
    if metric.min is not None and value < metric.min:
        return _failed(replace(base, threshold=metric.min), f"{_g(value)} < min {_g(metric.min)}")
    bounds = [
        f">= min {_g(metric.min)}" if metric.min is not None else "",
        f"<= max {_g(metric.max)}" if metric.max is not None else "",
    ]
    return _passed(base, f"{_g(value)} {' and '.join(b for b in bounds if b)}")


class _ByRequests(TypedDict):
    min_requests: int
    alpha: float


class _ByLabels(TypedDict):
    min_labels: int
    alpha: float


def run_checks(
    policy: Policy,
    canary: RevisionMeasurements,
    stable: RevisionMeasurements,
    metrics: Mapping[str, Measurement],
) -> tuple[CheckResult, ...]:
    """Every check the policy turns on, in a fixed order; a metric without a reading is no data."""
    c_p99 = p99_measurement(canary.p99_seconds, canary.latency_buckets)
    s_p99 = p99_measurement(stable.p99_seconds, stable.latency_buckets)
    c_errors = ratio(canary.server_errors, canary.requests)
    s_errors = ratio(stable.server_errors, stable.requests)
    c_accuracy = ratio(canary.correct, canary.predictions)
    s_accuracy = ratio(stable.correct, stable.predictions)
    c_mae = mean_measurement(canary.absolute_error, canary.squared_error, canary.predictions)
    s_mae = mean_measurement(stable.absolute_error, stable.squared_error, stable.predictions)
    p, alpha = policy, policy.check_alpha
    requests = _ByRequests(min_requests=p.min_requests, alpha=alpha)
    labels = _ByLabels(min_labels=p.min_labelled_samples, alpha=alpha)
    # Each built-in check with the threshold that turns it on, in the order status shows them.
    built_in: tuple[tuple[float | None, Callable[[float], CheckResult]], ...] = (
        (
            p.max_p99_latency_ms,
            lambda limit: check_p99_max(
                c_p99, buckets=canary.latency_buckets, max_ms=limit, **requests
            ),
        ),
        (
            p.max_p99_latency_increase_vs_stable,
            lambda limit: check_p99_vs_stable(
                c_p99,
                s_p99,
                canary_buckets=canary.latency_buckets,
                stable_buckets=stable.latency_buckets,
                max_increase=limit,
                **requests,
            ),
        ),
        (
            p.max_error_rate,
            lambda limit: check_error_rate_max(c_errors, max_rate=limit, **requests),
        ),
        (
            p.max_error_rate_increase_vs_stable,
            lambda limit: check_error_rate_vs_stable(
                c_errors, s_errors, max_increase=limit, **requests
            ),
        ),
        (
            p.min_accuracy,
            lambda limit: check_accuracy_min(c_accuracy, min_accuracy=limit, **labels),
        ),
        (
            p.max_accuracy_drop_vs_stable,
            lambda limit: check_accuracy_drop_vs_stable(
                c_accuracy, s_accuracy, max_drop=limit, **labels
            ),
        ),
        (p.max_mean_absolute_error, lambda limit: check_mae_max(c_mae, max_mae=limit, **labels)),
        (
            p.max_mean_absolute_error_increase_vs_stable,
            lambda limit: check_mae_vs_stable(c_mae, s_mae, max_increase=limit, **labels),
        ),
    )
    results = [check(limit) for limit, check in built_in if limit is not None]
    results.extend(check_metric(m, metrics.get(m.name, Measurement())) for m in p.metrics)
    return tuple(results)


# --- the interval ---------------------------------------------------------------------------


def judge_interval(results: Sequence[CheckResult]) -> IntervalVerdict:
    """Any Fail fails the interval; else any Inconclusive makes it Inconclusive; else Pass."""
    results = tuple(results)
    failed = tuple(r for r in results if r.verdict == "Fail")
    inconclusive = tuple(r for r in results if r.verdict == "Inconclusive")
    causes = [r.cause for r in inconclusive]
    verdict = IntervalVerdict(
        verdict="Pass",
        reason=f"all {len(results)} checks passed" if results else "no checks configured",
        results=results,
        failed=tuple(r.name for r in failed),
        inconclusive=tuple(r.name for r in inconclusive),
        no_data=causes.count("no-data"),
        query_errors=causes.count("query-error"),
        too_few_samples=causes.count("too-few-samples"),
        undecided=causes.count("undecided"),
    )
    if failed:
        reason = "; ".join(f"{r.name}: {r.reason}" for r in failed)
        return replace(verdict, verdict="Fail", reason=reason)
    if inconclusive:
        tally = ", ".join(
            f"{n} {label}"
            for n, label in (
                (verdict.no_data, "no data"),
                (
                    verdict.query_errors,
                    "query error" if verdict.query_errors == 1 else "query errors",
                ),
                (verdict.too_few_samples, "too few samples"),
                (verdict.undecided, "undecided"),
            )
            if n
        )
        detail = "; ".join(f"{r.name}: {r.reason}" for r in inconclusive)
        reason = f"{len(inconclusive)} of {len(results)} checks inconclusive ({tally}): {detail}"
        return replace(verdict, verdict="Inconclusive", reason=reason)
    return verdict


# --- the decision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepState:
    """Where the rollout is, and the counters its decisions need (persisted between intervals).

    `failures` counts failed intervals over the whole rollout (advancing does not forgive them).
    `inconclusive` counts inconclusive intervals in a row (a Pass or a Fail ends the run) and
    `missing_data` those of them that lacked data.
    """

    step: int  # index into spec.rollout.steps
    steps: int  # len(spec.rollout.steps)
    failures: int = 0
    inconclusive: int = 0
    missing_data: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.step < self.steps:
            raise ValueError(f"step {self.step} outside 0..{self.steps - 1}")

    @property
    def last_step(self) -> bool:
        """Whether this is the rollout's last step."""
        return self.step == self.steps - 1


@dataclass(frozen=True)
class StepDecision:
    """What to do after an interval, the counters to persist, and the figures behind it."""

    action: Action
    reason: str
    verdict: Verdict
    state: StepState  # after this interval
    failure_limit: int
    inconclusive_limit: int


def decide(state: StepState, interval: IntervalVerdict, policy: Policy) -> StepDecision:
    """The rollout's next move after one interval's verdict.

    Pass advances (or promotes after the last step). Fail holds the step until `failure_limit`
    failed intervals, then rolls back. Inconclusive holds the step until `inconclusive_limit` in a
    row, then pauses, or rolls back when `on_inconclusive` says so and none of those intervals
    lacked data: missing data never promotes and never rolls back.
    """

    def decision(action: Action, reason: str, after: StepState) -> StepDecision:
        return StepDecision(
            action=action,
            reason=reason,
            verdict=interval.verdict,
            state=after,
            failure_limit=policy.failure_limit,
            inconclusive_limit=policy.inconclusive_limit,
        )

    where = f"step {state.step + 1} of {state.steps}"
    if interval.verdict == "Pass":
        cleared = replace(state, inconclusive=0, missing_data=0)
        if state.last_step:
            return decision("Promote", f"{where} passed ({interval.reason}): promoting", cleared)
        return decision(
            "Advance",
            f"{where} passed ({interval.reason}): advancing to step {state.step + 2}",
            replace(cleared, step=state.step + 1),
        )
    if interval.verdict == "Fail":
        after = replace(
            state,
            failures=state.failures + 1,
            inconclusive=0,
            missing_data=0,
        )
        tally = f"{after.failures} of {policy.failure_limit} failed intervals"
        if after.failures >= policy.failure_limit:
            return decision("RollBack", f"{interval.reason} ({tally}): rolling back", after)
        return decision("Continue", f"{interval.reason} ({tally}): holding {where}", after)
    after = replace(
        state,
        inconclusive=state.inconclusive + 1,
        missing_data=state.missing_data + (1 if interval.evidence_missing else 0),
    )
    tally = f"{after.inconclusive} of {policy.inconclusive_limit} inconclusive intervals"
    if after.inconclusive < policy.inconclusive_limit:
        return decision("Continue", f"{interval.reason} ({tally}): holding {where}", after)
    if policy.on_inconclusive == "rollback" and after.missing_data == 0:
        return decision("RollBack", f"{interval.reason} ({tally}): rolling back", after)
    held_back = (
        f"; not rolling back: {after.missing_data} of them lacked data"
        if policy.on_inconclusive == "rollback"
        else ""
    )
    return decision("Pause", f"{interval.reason} ({tally}{held_back}): pausing at {where}", after)


# --- helpers --------------------------------------------------------------------------------


def _base(
    name: str,
    *,
    value: float | None = None,
    baseline: float | None = None,
    threshold: float | None = None,
    samples: int | None = None,
    baseline_samples: int | None = None,
) -> CheckResult:
    # The figures of a check, before its verdict is known.
    return CheckResult(
        name=name,
        verdict="Inconclusive",
        reason="",
        value=value,
        baseline=baseline,
        threshold=threshold,
        samples=samples,
        baseline_samples=baseline_samples,
    )


def _passed(base: CheckResult, reason: str) -> CheckResult:
    return replace(base, verdict="Pass", reason=reason, cause=None)


def _failed(base: CheckResult, reason: str, p_value: float | None = None) -> CheckResult:
    return replace(base, verdict="Fail", reason=reason, p_value=p_value, cause=None)


def _undecided(
    base: CheckResult, reason: str, cause: Cause = "undecided", p_value: float | None = None
) -> CheckResult:
    return replace(base, verdict="Inconclusive", reason=reason, p_value=p_value, cause=cause)


def _two_sided(
    base: CheckResult, measured: str, *, limit: str, p_bad: float, p_good: float, alpha: float
) -> CheckResult:
    # Checks whose Pass needs evidence too (accuracy, MAE): labels are few and dear, and a model
    # that is fast and error-free but wrong must not be promoted on an estimate.
    if p_bad < alpha:
        return _failed(base, f"{measured}: shown > {limit}, p={_p(p_bad)}", p_bad)
    if p_good < alpha:
        return replace(
            _passed(base, f"{measured}: shown <= {limit}, p={_p(p_good)}"), p_value=p_good
        )
    return _undecided(
        base,
        f"{measured}: not shown on either side of {limit} yet (p={_p(p_bad)} worse, "
        f"p={_p(p_good)} within; {_p(alpha)} needed)",
        p_value=min(p_bad, p_good),
    )


def _judged(base: CheckResult, measured: str, p_value: float, alpha: float) -> CheckResult:
    # Past its tolerance: only a significant difference blames the canary.
    if p_value < alpha:
        return _failed(base, f"{measured}, p={_p(p_value)}", p_value)
    return _undecided(
        base, f"{measured}, but not significantly: p={_p(p_value)} >= {_p(alpha)}", p_value=p_value
    )


def _judge_tail(
    base: CheckResult,
    over: str,
    alpha: float,
    *,
    buckets: tuple[HistogramMeasurement, ...],
    test: Callable[[tuple[Histogram, ...]], statistics.TailTest],
    describe: Callable[[statistics.TailTest], str],
) -> CheckResult:
    """A p99 over its limit, judged by counting the tail in the histograms (`test`): Fail on a
    significant tail, else Inconclusive (also when a histogram is missing or has no bound to
    count at)."""
    histograms: list[Histogram] = []
    for measured in buckets:
        if measured.error is not None:
            return _undecided(base, f"{over}; query error: {measured.error}", "query-error")
        if measured.histogram is None:
            return _undecided(base, f"{over}; no data: latency histogram", "no-data")
        histograms.append(measured.histogram)
    try:
        tail = test(tuple(histograms))
    except ValueError as why:
        return _undecided(base, f"{over}; {why}")
    return _judged(base, f"{over}; {describe(tail)}", tail.p_value, alpha)


def _unusable(
    name: str,
    reading: Measurement,
    *,
    min_samples: int,
    unit: str,
    what: str,
    threshold: float | None = None,
    side: str = "",
) -> CheckResult | None:
    """The Inconclusive result of a reading that cannot be judged, or None when it can."""
    base = _base(name, threshold=threshold, samples=reading.samples)
    if reading.error is not None:
        on = f" ({side})" if side else ""
        return _undecided(base, f"query error{on}: {reading.error}", "query-error")
    if reading.samples is not None and reading.samples < min_samples:
        on = f"{side}: " if side else ""
        return _undecided(
            base, f"{on}{reading.samples} {unit} < {min_samples} needed", "too-few-samples"
        )
    if reading.samples is None or reading.value is None or math.isnan(reading.value):
        return _undecided(base, f"no data: {side + ' ' if side else ''}{what}", "no-data")
    return None


def _unusable_pair(
    name: str, canary: Measurement, stable: Measurement, *, min_samples: int, unit: str, what: str
) -> CheckResult | None:
    # The canary is looked at first: its problem is the one a human needs to see.
    for side, reading in (("canary", canary), ("stable", stable)):
        unusable = _unusable(
            name, reading, min_samples=min_samples, unit=unit, what=what, side=side
        )
        if unusable is not None:
            return replace(unusable, samples=canary.samples, baseline_samples=stable.samples)
    return None


def _proportion(reading: Measurement) -> tuple[int, int, float]:
    # (successes, trials, ratio) of a reading _unusable has accepted.
    assert reading.value is not None and reading.samples is not None
    trials = reading.samples
    successes = min(max(round(reading.value * trials), 0), trials)
    return successes, trials, successes / trials


def _join_errors(*errors: str | None) -> str | None:
    present = [e for e in errors if e is not None]
    return "; ".join(present) if present else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _count(value: float) -> int:
    # increase() extrapolates to the window's edges: counts arrive as floats near integers.
    return max(round(value), 0)


def _g(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if abs(x) >= 10_000 or x == int(x):
        return f"{x:.0f}"
    return f"{x:.4g}"


def _ms(ms: float) -> str:
    return f"{_g(ms)} ms"


def _pct(ratio: float) -> str:
    return f"{_g(round(ratio * 100, 2))}%"


def _points(difference: float) -> str:
    # A difference of two ratios in percentage points, signed when negative ("-0.2 points").
    points = round(difference * 100, 2)
    return f"{_g(points)} {'point' if abs(points) == 1 else 'points'}"


def _p(p: float) -> str:
    return f"{p:.2g}"
