"""The statistics against figures from textbooks, hand calculation or exact enumeration."""

from __future__ import annotations

import math

import pytest
from modelship.analysis import statistics
from modelship.analysis.statistics import Histogram

# A RuntimeWarning from scipy (a degenerate table, a failed optimisation) is a bug here. Scoped
# to these tests and that category: a global filter would also turn a socket another test left
# to the garbage collector into this test's failure.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


# Newcombe, "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Statistics in Medicine 17 (1998) 857-872, Table I, method 3 (Wilson score, no
# continuity correction), 95%.
@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = statistics.wilson_interval(successes, trials, 0.95)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_wilson_upper_bound_of_zero_successes_has_a_closed_form() -> None:
    # With no successes the Wilson upper bound is z^2 / (n + z^2) (set p = 0 in the score
    # formula). At 90% two-sided, z = 1.644854: 2.705543 / 22.705543 = 0.119158 for n = 20.
    z2 = 1.6448536269514722**2
    assert statistics.wilson_interval(0, 20, 0.90).high == pytest.approx(z2 / (20 + z2), rel=1e-9)
    assert statistics.wilson_interval(0, 20, 0.90).high == pytest.approx(0.119158, abs=1e-6)


def test_wilson_interval_of_all_successes_reaches_one() -> None:
    interval = statistics.wilson_interval(29, 29, 0.95)
    assert interval.high == pytest.approx(1.0)
    # Mirror of 0 of 29 (Newcombe's 0/20 row shows the same shape): 1 - z^2 / (n + z^2).
    assert interval.low == pytest.approx(1 - 1.959964**2 / (29 + 1.959964**2), abs=1e-6)


@pytest.mark.parametrize(
    ("successes", "trials", "confidence"),
    [(0, 0, 0.95), (3, 2, 0.95), (-1, 5, 0.95), (1, 5, 1.0), (1, 5, 0.0)],
)
def test_wilson_interval_refuses_nonsense(successes: int, trials: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        statistics.wilson_interval(successes, trials, confidence)


def _fisher_greater(x1: int, n1: int, x2: int, n2: int) -> float:
    # Exact enumeration of the hypergeometric tail P(X1 >= x1 | margins), independent of scipy.
    s = x1 + x2
    total = math.comb(n1 + n2, s)
    return sum(math.comb(n1, k) * math.comb(n2, s - k) for k in range(x1, min(n1, s) + 1)) / total


def _boschloo_greater(x1: int, n1: int, x2: int, n2: int, grid: int = 20_001) -> float:
    # Boschloo's definition, enumerated: the largest probability, over the common success
    # probability pi, of the tables whose Fisher p-value is at most the observed one.
    observed = _fisher_greater(x1, n1, x2, n2)
    extreme = [
        (a, b)
        for a in range(n1 + 1)
        for b in range(n2 + 1)
        if _fisher_greater(a, n1, b, n2) <= observed * (1 + 1e-12)
    ]

    def prob(pi: float) -> float:
        return sum(
            math.comb(n1, a) * math.comb(n2, b) * pi ** (a + b) * (1 - pi) ** (n1 + n2 - a - b)
            for a, b in extreme
        )

    return max(prob(i / (grid - 1)) for i in range(grid))


def test_fisher_one_sided_matches_the_tea_tasting_experiment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fisher's lady tasting tea, 3 of 4 right guesses vs 1 of 4: one-sided P = 17/70 = 0.243
    # (Agresti, Categorical Data Analysis, 2nd ed., 2002, section 3.5.2, Table 3.8).
    monkeypatch.setattr(statistics, "BOSCHLOO_MAX_TABLES", 0)
    test = statistics.proportion_greater(3, 4, 1, 4)
    assert test.method == "fisher"
    assert test.p_value == pytest.approx(17 / 70)


def test_boschloo_two_of_two_against_none_of_two_by_hand() -> None:
    # Only the observed table (2 of 2 vs 0 of 2) has a Fisher p-value <= 1/6, so Boschloo's
    # p-value is max over pi of pi^2 (1 - pi)^2: 1/16 at pi = 1/2; Fisher's own is 1/6.
    test = statistics.proportion_greater(2, 2, 0, 2)
    assert test.method == "boschloo"
    assert test.p_value == pytest.approx(1 / 16, abs=1e-6)
    assert _fisher_greater(2, 2, 0, 2) == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(3, 4, 1, 4), (1, 5, 0, 5), (4, 10, 0, 10), (5, 12, 1, 9), (2, 6, 3, 6)],
)
def test_boschloo_agrees_with_enumeration(x1: int, n1: int, x2: int, n2: int) -> None:
    test = statistics.proportion_greater(x1, n1, x2, n2)
    assert test.method == "boschloo"
    assert test.p_value == pytest.approx(_boschloo_greater(x1, n1, x2, n2), abs=1e-4)
    # Uniformly more powerful than Fisher's test, and still exact: never a larger p-value.
    assert test.p_value <= _fisher_greater(x1, n1, x2, n2) + 1e-9


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(30, 1000, 10, 1000), (12, 5000, 3, 20000), (250, 400, 180, 300)],
)
def test_large_counts_use_fisher_exactly(x1: int, n1: int, x2: int, n2: int) -> None:
    test = statistics.proportion_greater(x1, n1, x2, n2)
    assert test.method == "fisher"
    assert test.p_value == pytest.approx(_fisher_greater(x1, n1, x2, n2), rel=1e-9)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(0, 50, 0, 50), (50, 50, 50, 50), (0, 5000, 0, 5000), (0, 10, 3, 10)],
)
def test_no_evidence_of_a_greater_proportion(x1: int, n1: int, x2: int, n2: int) -> None:
    assert statistics.proportion_greater(x1, n1, x2, n2).p_value == pytest.approx(1.0)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(0, 0, 1, 5), (1, 5, 0, 0), (6, 5, 1, 5)])
def test_proportion_test_refuses_nonsense(x1: int, n1: int, x2: int, n2: int) -> None:
    with pytest.raises(ValueError):
        statistics.proportion_greater(x1, n1, x2, n2)


INF = math.inf


def hist(*pairs: tuple[float, float]) -> Histogram:
    return Histogram.from_cumulative(pairs)


def test_histogram_sorts_buckets_and_counts_the_tail() -> None:
    h = hist((INF, 10.2), (0.1, 7.9), (0.05, 4))
    assert h.buckets == ((0.05, 4.0), (0.1, 7.9), (INF, 10.2))
    assert h.total == 10
    assert h.above(0.05) == 6
    assert h.above(0.1) == 2
    assert h.bounds() == {0.05, 0.1}


def test_histogram_clamps_a_lower_bucket_extrapolated_above_the_total() -> None:
    assert hist((0.1, 10.4), (INF, 10.0)).above(0.1) == 0


@pytest.mark.parametrize("pairs", [[], [(0.1, 3.0)], [(0.1, 1.0), (0.1, 2.0), (INF, 2.0)]])
def test_histogram_refuses_incomplete_buckets(pairs: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError):
        Histogram.from_cumulative(pairs)


@pytest.mark.parametrize(
    ("latency", "bound"),
    [(0.2, 0.1), (0.1, 0.1), (0.3, 0.25), (0.01, 0.05)],
    ids=["largest-shared-below", "exact", "above-all", "below-all-takes-least"],
)
def test_tail_bound_is_the_largest_shared_bound_below_the_latency(
    latency: float, bound: float
) -> None:
    canary = hist((0.05, 1), (0.1, 2), (0.25, 3), (INF, 3))
    stable = hist((0.05, 1), (0.1, 2), (0.2, 2), (0.25, 3), (INF, 3))
    assert statistics.tail_bound(canary, stable, latency) == bound


def test_tail_bound_needs_a_shared_finite_bound() -> None:
    with pytest.raises(ValueError, match="no finite bucket bound"):
        statistics.tail_bound(hist((0.1, 1), (INF, 1)), hist((0.2, 1), (INF, 1)), 0.15)


def test_compare_tails_is_the_proportion_test_on_requests_past_the_bound() -> None:
    # Both canary requests are slower than 100 ms, neither of stable's: the 2-of-2 vs 0-of-2
    # table worked by hand above (Boschloo p = 1/16).
    tail = statistics.compare_tails(hist((0.1, 0), (INF, 2)), hist((0.1, 2), (INF, 2)), 0.12)
    assert (tail.bound, tail.canary_above, tail.canary_total) == (0.1, 2, 2)
    assert (tail.stable_above, tail.stable_total) == (0, 2)
    assert tail.p_value == pytest.approx(1 / 16, abs=1e-6)


def test_compare_tails_at_production_counts() -> None:
    # 100 of 1000 canary requests past 100 ms against 10 of 1000 for stable.
    canary = hist((0.05, 700), (0.1, 900), (0.2, 990), (INF, 1000))
    stable = hist((0.05, 900), (0.1, 990), (0.2, 1000), (INF, 1000))
    tail = statistics.compare_tails(canary, stable, 0.12)
    assert (tail.canary_above, tail.stable_above, tail.method) == (100, 10, "fisher")
    assert tail.p_value == pytest.approx(_fisher_greater(100, 1000, 10, 1000), rel=1e-9)
    assert tail.p_value < 1e-15
