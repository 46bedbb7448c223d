"""The statistics against figures from textbooks, hand calculation or exact enumeration."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from modelship.analysis import statistics
from modelship.analysis.statistics import Histogram
from scipy import optimize

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
    [(0.12, 0.2), (0.1, 0.1), (0.21, 0.25), (0.01, 0.05)],
    ids=["least-shared-above", "exact", "skips-an-unshared-bound", "below-all-takes-least"],
)
def test_tail_bound_is_the_least_shared_bound_at_or_above_the_latency(
    latency: float, bound: float
) -> None:
    canary = hist((0.05, 1), (0.1, 2), (0.2, 2), (0.25, 3), (INF, 3))
    stable = hist((0.05, 1), (0.1, 2), (0.2, 2), (0.22, 2), (0.25, 3), (INF, 3))
    assert statistics.tail_bound(latency, canary, stable) == bound


def test_tail_bound_needs_a_shared_finite_bound_at_or_above_the_latency() -> None:
    with pytest.raises(ValueError, match="no finite bucket bound"):
        statistics.tail_bound(0.15, hist((0.1, 1), (INF, 1)), hist((0.2, 1), (INF, 1)))
    with pytest.raises(ValueError, match=r"at or above 300 ms .* largest is 200 ms"):
        statistics.tail_bound(0.3, hist((0.2, 1), (INF, 1)))


def _binomial_at_least(k: int, n: int, share: Fraction) -> float:
    # P(X >= k) for X ~ Binomial(n, share), summed exactly in rationals: independent of scipy.
    return float(sum(math.comb(n, i) * share**i * (1 - share) ** (n - i) for i in range(k, n + 1)))


@pytest.mark.parametrize(
    ("above", "total", "p_value"),
    [
        # 2 of 100 past the limit: 1 - 0.99^100 - 100 * 0.01 * 0.99^99, a p99 over it by chance.
        (2, 100, 0.264238),
        (1, 100, 0.633968),  # 1 - 0.99^100
        (0, 100, 1.0),
        (5, 100, 0.0034323),
        (100, 500, 3.8176e-95),
    ],
)
def test_tail_exceeds_is_the_binomial_test_of_more_than_one_percent_past_the_bound(
    above: int, total: int, p_value: float
) -> None:
    canary = hist((0.05, total - above - 0), (0.1, total - above), (INF, total))
    tail = statistics.tail_exceeds(canary, 0.08)
    assert (tail.bound, tail.canary_above, tail.canary_total) == (0.1, above, total)
    assert tail.p_value == pytest.approx(p_value, rel=1e-4)
    assert tail.p_value == pytest.approx(
        _binomial_at_least(above, total, Fraction(1, 100)), rel=1e-9
    )


def test_tail_exceeds_of_an_empty_histogram_is_no_evidence() -> None:
    assert statistics.tail_exceeds(hist((0.1, 0), (INF, 0)), 0.1).p_value == 1.0


def test_compare_tails_needs_the_canary_past_one_percent_and_heavier_than_stable() -> None:
    # 2 of 2 canary requests past 100 ms, none of stable's: heavier than stable at Boschloo's
    # p = 1/16 (worked by hand above), past 1% at p = 1 - 0.99^2 ... = 0.0001; the larger decides.
    tail = statistics.compare_tails(hist((0.1, 0), (INF, 2)), hist((0.1, 2), (INF, 2)), 0.1)
    assert (tail.bound, tail.canary_above, tail.canary_total) == (0.1, 2, 2)
    assert (tail.stable_above, tail.stable_total) == (0, 2)
    assert tail.p_value == pytest.approx(1 / 16, abs=1e-6)
    assert tail.method == "intersection-union"


def test_compare_tails_at_production_counts() -> None:
    # Judged at 200 ms, the least bound at or above the 120 ms limit: 10 of 1000 canary requests
    # past it, none of stable's. Heavier than stable (Fisher p = 0.001), but 1% is no more than
    # 1%: the canary's p99 is not shown past the limit.
    canary = hist((0.05, 700), (0.1, 900), (0.2, 990), (INF, 1000))
    stable = hist((0.05, 900), (0.1, 990), (0.2, 1000), (INF, 1000))
    tail = statistics.compare_tails(canary, stable, 0.12)
    assert (tail.bound, tail.canary_above, tail.stable_above) == (0.2, 10, 0)
    assert _fisher_greater(10, 1000, 0, 1000) < 0.001
    assert tail.p_value == pytest.approx(_binomial_at_least(10, 1000, Fraction(1, 100)), rel=1e-9)
    assert tail.p_value > 0.4
    # 50 past it: both tests reject; the larger p is the two-sample one.
    slow = hist((0.05, 700), (0.1, 850), (0.2, 950), (INF, 1000))
    tail = statistics.compare_tails(slow, stable, 0.12)
    assert tail.p_value == pytest.approx(_fisher_greater(50, 1000, 0, 1000), rel=1e-9)
    assert tail.p_value < 1e-15


# --- the test of a difference with the margin inside it -----------------------------------


def _restricted_numerically(x1: int, n1: int, x2: int, n2: int, margin: float) -> float:
    # The maximum-likelihood p2 under p1 = p2 + margin, found by a bounded search (independent
    # of the closed form under test).
    def negative_log_likelihood(p2: float) -> float:
        p1 = p2 + margin
        return -(
            (x1 * math.log(p1) if x1 else 0.0)
            + (n1 - x1) * math.log(1 - p1)
            + (x2 * math.log(p2) if x2 else 0.0)
            + (n2 - x2) * math.log(1 - p2)
        )

    found = optimize.minimize_scalar(
        negative_log_likelihood,
        bounds=(max(0.0, -margin) + 1e-12, min(1.0, 1.0 - margin) - 1e-12),
        method="bounded",
        options={"xatol": 1e-13},
    )
    return float(found.x)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "margin"),
    [
        (20, 400, 4, 400, 0.005),
        (30, 500, 10, 500, 0.02),
        (3, 100, 1, 100, 0.005),
        (0, 200, 0, 300, 0.01),
        (50, 100, 2, 250, 0.1),
        (1, 1000, 5, 100, 0.03),
        # Negative margins: the non-inferiority side ("no more than 2 points below").
        (30, 500, 35, 500, -0.02),
        (0, 50, 0, 50, -0.1),
    ],
)
def test_restricted_proportions_maximise_the_likelihood_on_the_margin(
    x1: int, n1: int, x2: int, n2: int, margin: float
) -> None:
    r1, r2 = statistics.restricted_proportions(x1 / n1, n1, x2 / n2, n2, margin)
    assert r1 - r2 == pytest.approx(margin)
    assert r2 == pytest.approx(_restricted_numerically(x1, n1, x2, n2, margin), abs=1e-7)


def _score_p(x1: int, n1: int, x2: int, n2: int, margin: float) -> float:
    # The Farrington-Manning statistic from its definition, around the numeric estimate.
    r2 = _restricted_numerically(x1, n1, x2, n2, margin)
    r1 = r2 + margin
    z = (x1 / n1 - x2 / n2 - margin) / math.sqrt(r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2)
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize(
    ("counts", "margin", "p_value"),
    [
        # Known values of the non-inferiority test (one-sided, "worse by more than the margin").
        ((20, 400, 4, 400), 0.005, 0.0014674),
        ((30, 500, 10, 500), 0.02, 0.047616),
        ((3, 100, 1, 100), 0.005, 0.21877),
        ((75, 500, 30, 500), 0.02, 0.00012622),
        ((10, 100, 6, 100), 0.02, 0.29974),
        # Within the margin: the larger the margin, the less the evidence against the canary.
        ((12, 1000, 10, 1000), 0.01, 0.94598),
        # Non-inferiority (margin < 0): stable's wrong share minus the canary's above -2 points,
        # i.e. the canary no more than 2 points worse; 6% wrong each on 2000 labels.
        ((120, 2000, 120, 2000), -0.02, 0.0042144),
    ],
)
def test_difference_exceeds_matches_the_farrington_manning_score_test(
    counts: tuple[int, int, int, int], margin: float, p_value: float
) -> None:
    x1, n1, x2, n2 = counts
    test = statistics.difference_exceeds(x1, n1, x2, n2, margin)
    assert test.method == "farrington-manning"
    assert test.p_value == pytest.approx(p_value, rel=1e-4)
    assert test.p_value == pytest.approx(_score_p(x1, n1, x2, n2, margin), rel=1e-5)


def test_a_margin_near_zero_is_the_pooled_z_test() -> None:
    # At p1 = p2 the restricted estimate is the pooled proportion: 10/100 vs 5/100 pools to
    # 0.075, z = 0.05 / sqrt(0.075 * 0.925 * 2 / 100) = 1.3423, p = 0.0898.
    test = statistics.difference_exceeds(10, 100, 5, 100, 1e-12)
    assert test.p_value == pytest.approx(0.08975, abs=5e-5)


def test_the_margin_is_inside_the_test() -> None:
    # 5% vs 1% on 400 each: "worse at all" is near certain, "worse by more than 3 points" is
    # far from it, and "by more than 4 points" (the observed difference) is a coin toss.
    assert statistics.difference_exceeds(20, 400, 4, 400, 0.0).p_value < 0.001
    assert statistics.difference_exceeds(20, 400, 4, 400, 0.03).p_value > 0.15
    assert statistics.difference_exceeds(20, 400, 4, 400, 0.04).p_value == pytest.approx(0.5)
    ps = [statistics.difference_exceeds(20, 400, 4, 400, m).p_value for m in (0.01, 0.02, 0.03)]
    assert ps == sorted(ps)


def test_difference_exceeds_without_a_margin_is_the_exact_test() -> None:
    assert statistics.difference_exceeds(2, 2, 0, 2, 0.0) == statistics.proportion_greater(
        2, 2, 0, 2
    )


@pytest.mark.parametrize("margin", [-1.0, 1.0])
def test_difference_exceeds_refuses_a_margin_outside_minus_1_to_1(margin: float) -> None:
    with pytest.raises(ValueError):
        statistics.difference_exceeds(1, 10, 1, 10, margin)


def test_bonferroni_divides_alpha_among_the_tests() -> None:
    assert statistics.corrected_alpha(0.05, 1) == 0.05
    assert statistics.corrected_alpha(0.05, 4) == pytest.approx(0.0125)
    assert statistics.corrected_alpha(0.05, 0) == 0.05


def _normal_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_mean_versus_is_the_z_test_of_a_mean() -> None:
    # MAE 0.6 on 400 labels, variance 0.09: z = (0.6 - 0.5) / (0.3 / 20) = 6.667.
    test = statistics.mean_versus(0.6, 0.09, 400, 0.5)
    assert test.p_above == pytest.approx(_normal_tail(0.1 / 0.015), rel=1e-9)
    assert test.p_below == pytest.approx(1 - _normal_tail(0.1 / 0.015))
    assert statistics.mean_versus(0.5, 0.0, 10, 0.5) == statistics.MeanTest(1.0, 1.0)
    with pytest.raises(ValueError):
        statistics.mean_versus(0.5, 0.1, 1, 0.4)


def test_ratio_of_means_puts_the_tolerance_inside_the_test() -> None:
    # 0.55 vs 1.2 x 0.5 = 0.6: z = -0.05 / sqrt(0.09/400 + 1.44 x 0.09/400) = -2.134.
    test = statistics.ratio_of_means_versus((0.55, 0.09, 400), (0.5, 0.09, 400), 1.2)
    z = -0.05 / math.sqrt(0.09 / 400 + 1.44 * 0.09 / 400)
    assert test.p_below == pytest.approx(_normal_tail(-z), rel=1e-9)
    assert test.p_below == pytest.approx(0.01642, abs=1e-5)
