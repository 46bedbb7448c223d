"""Every Pass, Fail and Inconclusive path of every check, as a table of readings and reasons."""

from __future__ import annotations

import math

import pytest
from modelship import api
from modelship.analysis import checks
from modelship.analysis.checks import CheckResult, HistogramMeasurement, Measurement
from modelship.analysis.statistics import Histogram

INF = math.inf
R = Measurement


def buckets(*pairs: tuple[float, float]) -> HistogramMeasurement:
    return HistogramMeasurement(Histogram.from_cumulative(pairs))


# 1000 requests each: stable's p99 is 100 ms and none is past 200 ms; the slow canary's p99 is
# 360 ms, 5% of its requests past 200 ms.
STABLE = buckets((0.05, 900), (0.1, 990), (0.2, 1000), (0.4, 1000), (INF, 1000))
SLOW = buckets((0.05, 700), (0.1, 850), (0.2, 950), (0.4, 1000), (INF, 1000))
# 100 requests each: 2 canary requests vs none of stable's past 200 ms.
FEW_STABLE = buckets((0.05, 90), (0.1, 99), (0.2, 100), (0.4, 100), (INF, 100))
FEW_CANARY = buckets((0.05, 90), (0.1, 96), (0.2, 98), (0.4, 100), (INF, 100))
# 500 requests, 20% past 100 ms; and 100 requests, 2 of them past 100 ms.
OVER = buckets((0.05, 300), (0.1, 400), (0.2, 490), (INF, 500))
BARELY_OVER = buckets((0.05, 90), (0.1, 98), (INF, 100))


def p99_max(reading: Measurement, histogram: HistogramMeasurement = OVER) -> CheckResult:
    return checks.check_p99_max(reading, buckets=histogram, max_ms=100)


def p99_vs(
    canary: Measurement,
    stable: Measurement,
    c_buckets: HistogramMeasurement = SLOW,
    s_buckets: HistogramMeasurement = STABLE,
) -> CheckResult:
    return checks.check_p99_vs_stable(
        canary, stable, canary_buckets=c_buckets, stable_buckets=s_buckets, max_increase=0.2
    )


def errors_max(reading: Measurement, max_rate: float = 0.01) -> CheckResult:
    return checks.check_error_rate_max(reading, max_rate=max_rate)


def errors_vs(canary: Measurement, stable: Measurement, max_increase: float = 0.005) -> CheckResult:
    return checks.check_error_rate_vs_stable(canary, stable, max_increase=max_increase)


def accuracy_min(reading: Measurement) -> CheckResult:
    return checks.check_accuracy_min(reading, min_accuracy=0.92)


def accuracy_drop(canary: Measurement, stable: Measurement) -> CheckResult:
    return checks.check_accuracy_drop_vs_stable(canary, stable, max_drop=0.02)


def M(value: float, samples: int, variance: float) -> Measurement:
    return Measurement(value, samples, variance=variance)


def mae_max(measured: Measurement) -> CheckResult:
    return checks.check_mae_max(measured, max_mae=0.5)


def mae_vs(canary: Measurement, stable: Measurement) -> CheckResult:
    return checks.check_mae_vs_stable(canary, stable, max_increase=0.2)


def metric(reading: Measurement, lo: float | None = None, hi: float | None = None) -> CheckResult:
    return checks.check_metric(
        api.AnalysisMetric(name="custom", query="q", min=lo, max=hi), reading
    )


CASES = [
    # --- maxP99LatencyMs ----------------------------------------------------------------
    ("p99-under", lambda: p99_max(R(0.08, 500)), "Pass", None,
     "p99 80 ms <= 100 ms (500 requests)"),
    ("p99-at-the-limit", lambda: p99_max(R(0.1, 500)), "Pass", None,
     "p99 100 ms <= 100 ms (500 requests)"),
    ("p99-over", lambda: p99_max(R(0.1804, 500)), "Fail", None,
     "p99 180.4 ms > 100 ms; 20% of 500 requests slower than 100 ms, p=3.8e-95"),
    # 2 of 100 past the limit: P(X >= 2 | n=100, 1%) = 0.26, a p99 over it by chance.
    ("p99-over-but-noise", lambda: p99_max(R(0.105, 100), BARELY_OVER), "Inconclusive",
     "undecided", "p99 105 ms > 100 ms; 2% of 100 requests slower than 100 ms, but not "
     "significantly: p=0.26 >= 0.05"),
    ("p99-past-the-last-bucket", lambda: p99_max(R(INF, 500), buckets((0.1, 0), (INF, 500))),
     "Fail", None, "p99 +Inf ms > 100 ms; 100% of 500 requests slower than 100 ms, p=0"),
    ("p99-over-no-histogram", lambda: p99_max(R(0.1804, 500), HistogramMeasurement()),
     "Inconclusive", "no-data", "p99 180.4 ms > 100 ms; no data: latency histogram"),
    ("p99-over-histogram-error",
     lambda: p99_max(R(0.1804, 500), HistogramMeasurement(error="timeout")), "Inconclusive",
     "query-error", "p99 180.4 ms > 100 ms; query error: timeout"),
    ("p99-over-past-the-buckets",
     lambda: checks.check_p99_max(R(12.0, 500), buckets=OVER, max_ms=11_000), "Inconclusive",
     "undecided", "p99 12000 ms > 11000 ms; no bucket bound at or above 11000 ms to count the "
     "tail at (the largest is 200 ms)"),
    ("p99-few-requests", lambda: p99_max(R(0.18, 99)), "Inconclusive", "too-few-samples",
     "99 requests < 100 needed"),
    ("p99-no-requests", lambda: p99_max(R(None, 0)), "Inconclusive", "too-few-samples",
     "0 requests < 100 needed"),
    ("p99-nan", lambda: p99_max(R(math.nan, 500)), "Inconclusive", "no-data",
     "no data: p99 latency"),
    ("p99-no-data", lambda: p99_max(R()), "Inconclusive", "no-data", "no data: p99 latency"),
    ("p99-query-error", lambda: p99_max(R(error="timeout after 10s")), "Inconclusive",
     "query-error", "query error: timeout after 10s"),
    # --- maxP99LatencyIncreaseVsStable --------------------------------------------------
    ("p99-vs-within", lambda: p99_vs(R(0.11, 1000), R(0.1, 1000)), "Pass", None,
     "p99 110 ms vs stable 100 ms: <= 120 ms (stable +20%)"),
    # Judged at 200 ms, the least bucket bound at or above the 120 ms limit.
    ("p99-vs-heavier-tail", lambda: p99_vs(R(0.36, 1000), R(0.1, 1000)), "Fail", None,
     "p99 360 ms vs stable 100 ms: > 120 ms (stable +20%); 5% vs 0% of requests slower "
     "than 200 ms, p=4.7e-16"),
    ("p99-vs-over-but-noise",
     lambda: p99_vs(R(0.2, 100), R(0.1, 100), FEW_CANARY, FEW_STABLE), "Inconclusive",
     "undecided", "p99 200 ms vs stable 100 ms: > 120 ms (stable +20%); 2% vs 0% of requests "
     "slower than 200 ms, but not significantly: p=0.26 >= 0.05"),
    # Stable's own tail as heavy: the canary is past the limit, but so would stable be.
    ("p99-vs-stable-as-slow", lambda: p99_vs(R(0.36, 1000), R(0.1, 1000), SLOW, SLOW),
     "Inconclusive", "undecided", "p99 360 ms vs stable 100 ms: > 120 ms (stable +20%); 5% vs "
     "5% of requests slower than 200 ms, but not significantly: p=0.54 >= 0.05"),
    ("p99-vs-no-histogram",
     lambda: p99_vs(R(0.36, 1000), R(0.1, 1000), HistogramMeasurement()), "Inconclusive",
     "no-data", "p99 360 ms vs stable 100 ms: > 120 ms (stable +20%); no data: latency "
     "histogram"),
    ("p99-vs-histogram-error",
     lambda: p99_vs(R(0.36, 1000), R(0.1, 1000), s_buckets=HistogramMeasurement(error="503")),
     "Inconclusive", "query-error",
     "p99 360 ms vs stable 100 ms: > 120 ms (stable +20%); query error: 503"),
    ("p99-vs-no-shared-bucket",
     lambda: p99_vs(R(0.36, 1000), R(0.1, 1000), buckets((0.3, 10), (INF, 1000))),
     "Inconclusive", "undecided", "p99 360 ms vs stable 100 ms: > 120 ms (stable +20%); "
     "the histograms share no finite bucket bound"),
    ("p99-vs-limit-past-the-buckets", lambda: p99_vs(R(0.5, 1000), R(0.38, 1000)),
     "Inconclusive", "undecided", "p99 500 ms vs stable 380 ms: > 456 ms (stable +20%); no "
     "bucket bound at or above 456 ms to count the tail at (the largest is 400 ms)"),
    ("p99-vs-few-stable", lambda: p99_vs(R(0.36, 1000), R(0.1, 50)), "Inconclusive",
     "too-few-samples", "stable: 50 requests < 100 needed"),
    ("p99-vs-few-canary", lambda: p99_vs(R(0.36, 10), R(0.1, 1000)), "Inconclusive",
     "too-few-samples", "canary: 10 requests < 100 needed"),
    ("p99-vs-no-stable", lambda: p99_vs(R(0.36, 1000), R()), "Inconclusive", "no-data",
     "no data: stable p99 latency"),
    ("p99-vs-query-error", lambda: p99_vs(R(error="e1"), R(0.1, 1000)), "Inconclusive",
     "query-error", "query error (canary): e1"),
    # --- maxErrorRate -------------------------------------------------------------------
    ("errors-under", lambda: errors_max(R(0.004, 1000)), "Pass", None,
     "error ratio 0.4% (4 of 1000 requests) <= 1%"),
    ("errors-at-the-limit", lambda: errors_max(R(0.01, 1000)), "Pass", None,
     "error ratio 1% (10 of 1000 requests) <= 1%"),
    ("errors-over-within-noise", lambda: errors_max(R(0.015, 200)), "Inconclusive",
     "undecided",
     "error ratio 1.5% (3 of 200 requests) > 1%, not conclusively: lower bound 0.6%"),
    ("errors-over", lambda: errors_max(R(0.05, 1000)), "Fail", None,
     "error ratio 5% (50 of 1000 requests) > 1% (lower bound 3.98%)"),
    ("errors-any-against-zero", lambda: errors_max(R(0.01, 1000), 0.0), "Fail", None,
     "error ratio 1% (10 of 1000 requests) > 0% (lower bound 0.6%)"),
    ("errors-no-data", lambda: errors_max(R(None, 500)), "Inconclusive", "no-data",
     "no data: error ratio"),
    ("errors-few-requests", lambda: errors_max(R(0.5, 20)), "Inconclusive",
     "too-few-samples", "20 requests < 100 needed"),
    ("errors-query-error", lambda: errors_max(R(error="bad_data")), "Inconclusive",
     "query-error", "query error: bad_data"),
    # --- maxErrorRateIncreaseVsStable ---------------------------------------------------
    ("errors-vs-within", lambda: errors_vs(R(0.012, 1000), R(0.01, 1000)), "Pass", None,
     "error ratio 1.2% (12 of 1000) vs stable 1% (10 of 1000): 0.2 points <= 0.5 points"),
    ("errors-vs-better", lambda: errors_vs(R(0.0, 100), R(0.05, 100), 0.0), "Pass", None,
     "error ratio 0% (0 of 100) vs stable 5% (5 of 100): -5 points <= 0 points"),
    # p from the Farrington-Manning test of "worse by more than 0.5 points" (test_statistics).
    ("errors-vs-worse", lambda: errors_vs(R(0.05, 400), R(0.01, 400)), "Fail", None,
     "error ratio 5% (20 of 400) vs stable 1% (4 of 400): 4 points > 0.5 points, p=0.0015"),
    ("errors-vs-over-but-noise", lambda: errors_vs(R(0.03, 100), R(0.01, 100)),
     "Inconclusive", "undecided", "error ratio 3% (3 of 100) vs stable 1% (1 of 100): "
     "2 points > 0.5 points, but not significantly: p=0.22 >= 0.05"),
    ("errors-vs-few-stable", lambda: errors_vs(R(0.03, 100), R(0.01, 10)), "Inconclusive",
     "too-few-samples", "stable: 10 requests < 100 needed"),
    ("errors-vs-no-canary", lambda: errors_vs(R(), R(0.01, 1000)), "Inconclusive", "no-data",
     "no data: canary error ratio"),
    ("errors-vs-query-error", lambda: errors_vs(R(0.01, 1000), R(error="e2")),
     "Inconclusive", "query-error", "query error (stable): e2"),
    # --- minAccuracy --------------------------------------------------------------------
    # Passing needs evidence too: the lower bound, not the estimate, at or above the floor.
    ("accuracy-shown-above", lambda: accuracy_min(R(0.95, 400)), "Pass", None,
     "accuracy 95% (380 of 400 labels) >= 92% (lower bound 92.89%)"),
    ("accuracy-above-not-shown", lambda: accuracy_min(R(0.94, 100)), "Inconclusive",
     "undecided",
     "accuracy 94% (94 of 100 labels), 88.82% to 96.87%: not shown on either side of 92% yet"),
    ("accuracy-below-within-noise", lambda: accuracy_min(R(0.88, 100)), "Inconclusive",
     "undecided",
     "accuracy 88% (88 of 100 labels), 81.63% to 92.37%: not shown on either side of 92% yet"),
    ("accuracy-below", lambda: accuracy_min(R(0.80, 200)), "Fail", None,
     "accuracy 80% (160 of 200 labels) < 92% (upper bound 84.24%)"),
    # A perfect score on a handful of labels decides nothing.
    ("accuracy-a-handful-of-labels", lambda: accuracy_min(R(1.0, 12)), "Inconclusive",
     "too-few-samples", "12 labels < 100 needed"),
    ("accuracy-no-labels", lambda: accuracy_min(R(None, 0)), "Inconclusive",
     "too-few-samples", "0 labels < 100 needed"),
    ("accuracy-no-data", lambda: accuracy_min(R()), "Inconclusive", "no-data",
     "no data: accuracy"),
    ("accuracy-query-error", lambda: accuracy_min(R(error="x")), "Inconclusive",
     "query-error", "query error: x"),
    # --- maxAccuracyDropVsStable --------------------------------------------------------
    # Non-inferiority: a Pass shows the drop is under the margin (p of the mirrored test).
    ("drop-shown-within", lambda: accuracy_drop(R(0.94, 2000), R(0.94, 2000)), "Pass", None,
     "accuracy 94% (1880 of 2000) vs stable 94% (1880 of 2000): drop 0 points: shown <= 2 "
     "points, p=0.0042"),
    ("drop-within-not-shown", lambda: accuracy_drop(R(0.93, 500), R(0.94, 500)), "Inconclusive",
     "undecided", "accuracy 93% (465 of 500) vs stable 94% (470 of 500): drop 1 point: not "
     "shown on either side of 2 points yet (p=0.74 worse, p=0.26 within; 0.05 needed)"),
    ("drop-beyond", lambda: accuracy_drop(R(0.85, 500), R(0.94, 500)), "Fail", None,
     "accuracy 85% (425 of 500) vs stable 94% (470 of 500): drop 9 points: shown > 2 points, "
     "p=0.00013"),
    ("drop-beyond-but-noise", lambda: accuracy_drop(R(0.90, 100), R(0.94, 100)),
     "Inconclusive", "undecided", "accuracy 90% (90 of 100) vs stable 94% (94 of 100): drop 4 "
     "points: not shown on either side of 2 points yet (p=0.3 worse, p=0.7 within; 0.05 "
     "needed)"),
    ("drop-few-stable-labels", lambda: accuracy_drop(R(0.90, 150), R(0.94, 99)),
     "Inconclusive", "too-few-samples", "stable: 99 labels < 100 needed"),
    ("drop-no-stable", lambda: accuracy_drop(R(0.90, 150), R()), "Inconclusive", "no-data",
     "no data: stable accuracy"),
    ("drop-query-error", lambda: accuracy_drop(R(error="e"), R(0.9, 150)), "Inconclusive",
     "query-error", "query error (canary): e"),
    # --- maxMeanAbsoluteError (regression; value = MAE, variance of the absolute errors) ------
    ("mae-shown-under", lambda: mae_max(M(0.4, 400, 0.09)), "Pass", None,
     "MAE 0.4 (400 labels): shown <= 0.5, p=1.3e-11"),
    ("mae-shown-over", lambda: mae_max(M(0.6, 400, 0.09)), "Fail", None,
     "MAE 0.6 (400 labels): shown > 0.5, p=1.3e-11"),
    ("mae-near-the-limit", lambda: mae_max(M(0.51, 100, 0.09)), "Inconclusive", "undecided",
     "MAE 0.51 (100 labels): not shown on either side of 0.5 yet (p=0.37 worse, p=0.63 "
     "within; 0.05 needed)"),
    ("mae-few-labels", lambda: mae_max(M(0.1, 20, 0.01)), "Inconclusive", "too-few-samples",
     "20 labels < 100 needed"),
    ("mae-no-data", lambda: mae_max(R()), "Inconclusive", "no-data",
     "no data: mean absolute error"),
    # --- maxMeanAbsoluteErrorIncreaseVsStable ---------------------------------------------
    ("mae-vs-shown-within", lambda: mae_vs(M(0.55, 400, 0.09), M(0.5, 400, 0.09)), "Pass",
     None, "MAE 0.55 (400 labels) vs stable 0.5 (400 labels): shown <= 0.6 (stable +20%), "
     "p=0.016"),
    ("mae-vs-shown-worse", lambda: mae_vs(M(0.8, 400, 0.09), M(0.5, 400, 0.09)), "Fail", None,
     "MAE 0.8 (400 labels) vs stable 0.5 (400 labels): shown > 0.6 (stable +20%), p=7e-18"),
    ("mae-vs-few-stable", lambda: mae_vs(M(0.5, 400, 0.09), M(0.5, 40, 0.09)), "Inconclusive",
     "too-few-samples", "stable: 40 labels < 100 needed"),
    # --- user metrics -------------------------------------------------------------------
    ("metric-under-max", lambda: metric(R(0.3), hi=1), "Pass", None, "0.3 <= max 1"),
    ("metric-at-max", lambda: metric(R(1.0), hi=1), "Pass", None, "1 <= max 1"),
    ("metric-over-max", lambda: metric(R(1.5), hi=1), "Fail", None, "1.5 > max 1"),
    ("metric-under-min", lambda: metric(R(0.4), lo=0.5, hi=2), "Fail", None, "0.4 < min 0.5"),
    ("metric-in-range", lambda: metric(R(1.25), lo=0.5, hi=2), "Pass", None,
     "1.25 >= min 0.5 and <= max 2"),
    ("metric-nan", lambda: metric(R(math.nan), lo=0.5), "Inconclusive", "no-data",
     "no data: the query returned NaN"),
    ("metric-no-data", lambda: metric(R(), lo=0.5), "Inconclusive", "no-data", "no data"),
    ("metric-query-error", lambda: metric(R(error="bad_data: parse error"), lo=0.5),
     "Inconclusive", "query-error", "query error: bad_data: parse error"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("run", "verdict", "cause", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_check(run: object, verdict: str, cause: str | None, reason: str) -> None:
    assert callable(run)
    result = run()
    assert isinstance(result, CheckResult)
    assert (result.verdict, result.cause, result.reason) == (verdict, cause, reason)
    # Only an Inconclusive result carries a cause.
    assert (result.cause is None) == (verdict != "Inconclusive")


def test_a_relative_check_reports_both_sides_and_the_resolved_limit() -> None:
    result = p99_vs(R(0.36, 1000), R(0.1, 1000))
    assert (result.value, result.baseline) == (360.0, 100.0)
    assert result.threshold == pytest.approx(120.0)
    assert (result.samples, result.baseline_samples) == (1000, 1000)
    assert result.p_value == pytest.approx(4.7393e-16, rel=1e-4)


def test_an_unusable_pair_still_reports_the_samples_of_both_sides() -> None:
    result = errors_vs(R(0.03, 100), R(0.01, 10))
    assert (result.samples, result.baseline_samples) == (100, 10)


def test_sample_minimums_are_the_callers() -> None:
    all_slow = buckets((0.1, 0), (INF, 20))
    assert (
        checks.check_p99_max(R(0.2, 20), buckets=all_slow, max_ms=100, min_requests=20).verdict
        == "Fail"
    )
    assert checks.check_accuracy_min(R(0.5, 40), min_accuracy=0.9, min_labels=50).cause == (
        "too-few-samples"
    )


# --- readings from raw query results ----------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (R(3.02), R(199.7), R(3.02 / 199.7, 200)),
        (R(0.0), R(500.0), R(0.0, 500)),
        (R(None), R(500.0), R(None, 500)),  # the numerator has no series: no data
        (R(0.0), R(0.0), R(None, 0)),  # nothing happened: too few samples
        (R(5.0), R(None), R()),  # no series at all: no data
        (R(5.0), R(math.nan), R()),
        (R(10.4), R(10.0), R(1.0, 10)),  # extrapolation overshoot, clamped
        (R(error="e1"), R(error="e2"), R(error="e1; e2")),
        (R(1.0), R(error="e2"), R(error="e2")),
    ],
)
def test_ratio(numerator: Measurement, denominator: Measurement, expected: Measurement) -> None:
    assert checks.ratio(numerator, denominator) == expected


def test_p99_reading_counts_the_histograms_requests() -> None:
    assert checks.p99_measurement(R(0.12), STABLE) == R(0.12, 1000)
    assert checks.p99_measurement(R(0.12), HistogramMeasurement()) == R(0.12, None)
    assert checks.p99_measurement(R(0.12), HistogramMeasurement(error="e")) == R(error="e")


# --- the policy and every check it turns on ---------------------------------------------


def readings(
    *, requests: float, errors: float, p99: float, labels: float, correct: float
) -> checks.RevisionMeasurements:
    return checks.RevisionMeasurements(
        requests=R(requests),
        server_errors=R(errors),
        p99_seconds=R(p99),
        latency_buckets=STABLE,
        predictions=R(labels),
        correct=R(correct),
    )


HEALTHY_STABLE = readings(requests=1000, errors=10, p99=0.1, labels=5000, correct=4700)
HEALTHY_CANARY = readings(requests=1000, errors=11, p99=0.105, labels=5000, correct=4680)

ANALYSIS = api.Analysis(
    max_p99_latency_ms=150,
    max_p99_latency_increase_vs_stable=0.2,
    max_error_rate=0.02,
    min_accuracy=0.9,
    max_accuracy_drop_vs_stable=0.02,
    failure_limit=3,
    inconclusive_limit=4,
    on_inconclusive="rollback",
    metrics=[
        api.AnalysisMetric(name="queue-ms", query="q1", max=5),
        api.AnalysisMetric(name="unread", query="q2", min=0),
    ],
)


def test_policy_from_analysis_reads_every_field() -> None:
    policy = checks.Policy.from_analysis(ANALYSIS)
    assert policy.max_p99_latency_ms == 150
    assert policy.max_error_rate == 0.02
    assert policy.min_accuracy == 0.9
    assert policy.max_accuracy_drop_vs_stable == 0.02
    assert policy.failure_limit == 3
    assert [m.name for m in policy.metrics] == ["queue-ms", "unread"]
    assert policy.max_p99_latency_increase_vs_stable == 0.2
    assert policy.max_error_rate_increase_vs_stable is None
    assert (policy.inconclusive_limit, policy.on_inconclusive) == (4, "rollback")
    assert (policy.min_requests, policy.min_labelled_samples, policy.alpha) == (100, 100, 0.05)
    # Five built-in checks share alpha; the two user metrics are no statistical tests.
    assert (policy.statistical_checks, policy.check_alpha) == (5, pytest.approx(0.01))


@pytest.mark.parametrize(
    "changes", [{"alpha": 0.0}, {"alpha": 0.5}, {"min_requests": 0}, {"inconclusive_limit": 0}]
)
def test_policy_refuses_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        checks.Policy(**changes)  # type: ignore[arg-type]


def test_run_checks_runs_what_the_policy_turns_on_in_a_fixed_order() -> None:
    policy = checks.Policy.from_analysis(
        ANALYSIS.model_copy(update={"max_error_rate_increase_vs_stable": 0.01})
    )
    results = checks.run_checks(
        policy, HEALTHY_CANARY, HEALTHY_STABLE, {"queue-ms": R(1.5), "unread": R(error="e")}
    )
    assert [(r.name, r.verdict) for r in results] == [
        ("maxP99LatencyMs", "Pass"),
        ("maxP99LatencyIncreaseVsStable", "Pass"),
        ("maxErrorRate", "Pass"),
        ("maxErrorRateIncreaseVsStable", "Pass"),
        ("minAccuracy", "Pass"),
        ("maxAccuracyDropVsStable", "Pass"),
        ("queue-ms", "Pass"),
        ("unread", "Inconclusive"),
    ]
    assert results[0].samples == 1000  # the histogram's requests behind the p99
    assert results[4].samples == 5000  # the labels behind the accuracy


def test_run_checks_without_readings_is_no_data_everywhere() -> None:
    policy = checks.Policy.from_analysis(
        ANALYSIS.model_copy(update={"max_error_rate_increase_vs_stable": 0.01})
    )
    empty = checks.RevisionMeasurements()
    results = checks.run_checks(policy, empty, empty, {})
    assert {r.cause for r in results} == {"no-data"}
    assert len(results) == 8


def test_run_checks_with_every_check_off() -> None:
    empty = checks.RevisionMeasurements()
    assert checks.run_checks(checks.Policy(), empty, empty, {}) == ()


# --- several checks at once: Bonferroni ----------------------------------------------------

# 30 of 500 failed vs 10 of 500: "worse by more than 2 points" at p = 0.048.
BORDERLINE_CANARY = checks.RevisionMeasurements(requests=R(500), server_errors=R(30))
BORDERLINE_STABLE = checks.RevisionMeasurements(requests=R(500), server_errors=R(10))


@pytest.mark.parametrize(
    ("policy", "verdict", "alpha"),
    [
        # Alone, the check runs at alpha: p = 0.048 < 0.05 fails the canary.
        (checks.Policy(max_error_rate_increase_vs_stable=0.02), "Fail", 0.05),
        # With a second statistical check each runs at alpha / 2: the same figures hold.
        (
            checks.Policy(max_error_rate_increase_vs_stable=0.02, max_error_rate=0.5),
            "Inconclusive",
            0.025,
        ),
        # A user metric is no test and takes no share.
        (
            checks.Policy(
                max_error_rate_increase_vs_stable=0.02,
                metrics=(api.AnalysisMetric(name="m", query="q", max=1),),
            ),
            "Fail",
            0.05,
        ),
    ],
)
def test_each_statistical_check_of_an_interval_runs_at_its_share_of_alpha(
    policy: checks.Policy, verdict: str, alpha: float
) -> None:
    assert policy.check_alpha == pytest.approx(alpha)
    results = checks.run_checks(policy, BORDERLINE_CANARY, BORDERLINE_STABLE, {"m": R(0.0)})
    relative = next(r for r in results if r.name == checks.ERROR_RATE_VS_STABLE)
    assert relative.p_value == pytest.approx(0.0476, abs=1e-4)
    assert relative.verdict == verdict, relative.reason


@pytest.mark.parametrize(
    ("total", "squares", "count", "expected"),
    [
        # Absolute errors 1, 0 and 2.5: mean 7/6, sample variance 19/12.
        (R(3.5), R(7.25), R(3.0), Measurement(3.5 / 3, 3, variance=19 / 12)),
        (R(0.0), R(0.0), R(0.0), R(None, 0)),  # nothing labelled: too few samples
        (R(None), R(None), R(5.0), R(None, 5)),
        (R(1.0), R(1.0), R(None), R()),  # no series at all: no data
        (R(error="e"), R(1.0), R(2.0), R(error="e")),
    ],
)
def test_mean_measurement(
    total: Measurement, squares: Measurement, count: Measurement, expected: Measurement
) -> None:
    got = checks.mean_measurement(total, squares, count)
    assert (got.samples, got.error) == (expected.samples, expected.error)
    assert got.value == pytest.approx(expected.value)
    assert got.variance == pytest.approx(expected.variance)
