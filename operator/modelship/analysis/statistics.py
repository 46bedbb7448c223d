"""Statistics of canary verdicts: Wilson intervals, proportion tests with and without a margin,
latency tails, and the correction for running several checks at once."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from scipy import stats

# Boschloo's test enumerates every table with the observed column totals, (n1 + 1) * (n2 + 1) of
# them, and maximises over a nuisance parameter: ~0.1 s at 200 x 200 on one core, ~0.8 s at
# 400 x 400. Above this size Fisher's exact test (fast at any size) is used: its conservatism,
# the reason to prefer Boschloo on small counts, fades as counts grow.
BOSCHLOO_MAX_TABLES = 201 * 201

TestMethod = Literal["boschloo", "fisher", "farrington-manning", "binomial", "intersection-union"]

# A p99 is exceeded when more than this share of requests is slower than the limit.
TAIL_SHARE = 0.01


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a proportion."""

    low: float
    high: float


@dataclass(frozen=True)
class ProportionTest:
    """Outcome of a one-sided test that the first proportion is greater than the second."""

    p_value: float
    method: TestMethod


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative counts per upper bound, ascending, +Inf last."""

    buckets: tuple[tuple[float, float], ...]

    @classmethod
    def from_cumulative(cls, pairs: Iterable[tuple[float, float]]) -> Histogram:
        """Sort (le, cumulative count) pairs, as a `sum by (le)` query returns them unordered."""
        buckets = tuple(sorted((float(le), float(count)) for le, count in pairs))
        if not buckets or not math.isinf(buckets[-1][0]):
            raise ValueError("a histogram needs its +Inf bucket")
        if len({le for le, _ in buckets}) != len(buckets):
            raise ValueError("duplicate bucket bounds")
        return cls(buckets)

    @property
    def total(self) -> int:
        """Observations in the histogram (its +Inf bucket)."""
        return _count(self.buckets[-1][1])

    def bounds(self) -> frozenset[float]:
        """The finite upper bounds."""
        return frozenset(le for le, _ in self.buckets if not math.isinf(le))

    def above(self, bound: float) -> int:
        """Observations slower than `bound`, which must be one of the histogram's bounds."""
        at = next(count for le, count in self.buckets if le == bound)
        # increase() extrapolates each bucket series on its own, so a lower bucket can come out
        # a hair above a higher one; clamp rather than report a negative count.
        return max(self.total - _count(at), 0)


@dataclass(frozen=True)
class TailTest:
    """Comparison of the share of requests slower than one latency bound, canary vs stable."""

    bound: float
    canary_above: int
    canary_total: int
    stable_above: int
    stable_total: int
    p_value: float
    method: TestMethod


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of successes / trials (two-sided, at `confidence`).

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps close to its nominal
    coverage at small counts and at proportions near 0 or 1, which is where accuracy (near 1) and
    error ratios (near 0) live.
    """
    _check_counts(successes, trials)
    if trials == 0:
        raise ValueError("no trials: the interval is undefined")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ci = stats.binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return Interval(low=float(ci.low), high=float(ci.high))


def proportion_greater(x1: int, n1: int, x2: int, n2: int) -> ProportionTest:
    """One-sided p-value of H1: x1/n1 comes from a greater proportion than x2/n2.

    Exact at any size: Boschloo's unconditional test (uniformly more powerful than Fisher's, and
    still exact) while the tables are few enough to enumerate, Fisher's exact test beyond.
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one trial")
    method: TestMethod = "boschloo" if (n1 + 1) * (n2 + 1) <= BOSCHLOO_MAX_TABLES else "fisher"
    if x1 + x2 in (0, n1 + n2):
        # All failures or all successes on both sides: nothing tells the two apart.
        return ProportionTest(p_value=1.0, method=method)
    # Columns are the two binomial samples (scipy's orientation for both tests).
    table = [[x1, x2], [n1 - x1, n2 - x2]]
    if method == "boschloo":
        p = float(stats.boschloo_exact(table, alternative="greater").pvalue)
    else:
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return ProportionTest(p_value=min(max(p, 0.0), 1.0), method=method)


def difference_exceeds(x1: int, n1: int, x2: int, n2: int, margin: float) -> ProportionTest:
    """One-sided p-value of H1: p1 - p2 > margin, the margin inside the test.

    With a margin > 0, H0 is "p1 exceeds p2 by at most the margin" (rejecting it shows p1 worse
    by more than the margin); with a margin < 0, rejecting H0 shows p1 no more than |margin|
    below p2 (non-inferiority, read from the other side). With no margin this is the exact test of
    `proportion_greater`. With one, the Farrington-Manning score test: the difference of the
    observed proportions less the margin, over its standard error taken at the maximum-likelihood
    proportions that satisfy H0's boundary (p1 - p2 = margin), is standard normal under H0. Unlike
    testing "greater at all" and then comparing the estimate with the margin, this is a test of
    the question asked, at its level.
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if not -1 < margin < 1:
        raise ValueError(f"the margin must be in (-1, 1), got {margin}")
    if margin == 0:
        return proportion_greater(x1, n1, x2, n2)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one trial")
    p1, p2 = x1 / n1, x2 / n2
    r1, r2 = restricted_proportions(p1, n1, p2, n2, margin)
    variance = r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2
    excess = p1 - p2 - margin
    if variance <= 0:
        p = 0.0 if excess > 0 else 1.0
    else:
        p = float(stats.norm.sf(excess / math.sqrt(variance)))
    return ProportionTest(p_value=min(max(p, 0.0), 1.0), method="farrington-manning")


def restricted_proportions(
    p1: float, n1: int, p2: float, n2: int, margin: float
) -> tuple[float, float]:
    """The maximum-likelihood (p1, p2) of two binomial samples under p1 - p2 = margin.

    The closed form of Farrington and Manning (1990), the root of a cubic in trigonometric form.
    """
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + margin * (theta + 2))
    c = margin**2 + margin * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * margin * (1 + margin)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u = math.copysign(1.0, v) * math.sqrt(max(b**2 / (9 * a**2) - c / (3 * a), 0.0))
    # u = 0 only at degenerate inputs; the cosine's argument is clamped against rounding.
    cosine = min(max(v / u**3, -1.0), 1.0) if u != 0 else 0.0
    w = (math.pi + math.acos(cosine)) / 3
    # Both proportions in [0, 1] with r1 - r2 = margin, against rounding at the edges.
    r1 = min(max(2 * u * math.cos(w) - b / (3 * a), margin, 0.0), 1.0, 1.0 + margin)
    return r1, r1 - margin


def tail_bound(latency: float, *histograms: Histogram) -> float:
    """The bound a tail is judged at: the least finite bucket bound, shared by every histogram,
    at or above `latency`.

    More than 1% of requests slower than a bound at or above the limit means a p99 above the
    limit: the error is towards missing a slow canary by up to one bucket, never towards
    blaming a fast one.
    """
    shared = frozenset.intersection(*(h.bounds() for h in histograms))
    if not shared:
        raise ValueError("the histograms share no finite bucket bound")
    above = [b for b in shared if b >= latency]
    if not above:
        raise ValueError(
            f"no bucket bound at or above {latency * 1000:g} ms to count the tail at "
            f"(the largest is {max(shared) * 1000:g} ms)"
        )
    return min(above)


def tail_exceeds(canary: Histogram, latency: float) -> TailTest:
    """Test whether the canary's p99 is above `latency`: whether more than 1% of its requests are
    slower than the bound at or above it (an exact one-sided binomial test)."""
    bound = tail_bound(latency, canary)
    above, total = canary.above(bound), canary.total
    p = _binomial_greater(above, total, TAIL_SHARE)
    return TailTest(
        bound=bound,
        canary_above=above,
        canary_total=total,
        stable_above=0,
        stable_total=0,
        p_value=p,
        method="binomial",
    )


def compare_tails(canary: Histogram, stable: Histogram, latency: float) -> TailTest:
    """Test whether the canary's p99 is above `latency` (stable's p99 with its tolerance), and
    its tail heavier than stable's there.

    A p99 is a statement about the slowest 1%: at a bucket bound the histogram counts the share
    of requests slower than it exactly (no interpolation inside buckets). Two tests, and both
    must reject (an intersection-union test, valid at the level of each, no correction needed):
    more than 1% of the canary's requests are slower than the bound (the canary's p99 is past
    the limit, the tolerance inside the test), and a greater share of the canary's than of
    stable's (the stable's own tail, measured over the same window, does not explain it).
    """
    bound = tail_bound(latency, canary, stable)
    c_above, c_total = canary.above(bound), canary.total
    s_above, s_total = stable.above(bound), stable.total
    past_limit = _binomial_greater(c_above, c_total, TAIL_SHARE)
    heavier = proportion_greater(c_above, c_total, s_above, s_total).p_value
    return TailTest(
        bound=bound,
        canary_above=c_above,
        canary_total=c_total,
        stable_above=s_above,
        stable_total=s_total,
        p_value=max(past_limit, heavier),
        method="intersection-union",
    )


@dataclass(frozen=True)
class MeanTest:
    """One-sided p-values about a mean (or a difference of means) against a limit: that it is
    above (`p_above`), and that it is below (`p_below`)."""

    p_above: float
    p_below: float


def mean_versus(mean: float, variance: float, n: int, limit: float) -> MeanTest:
    """Large-sample z-tests of a mean of n values with the given sample variance against a
    limit (the mean of n >= ~100 values is close to normal whatever their distribution)."""
    if n < 2:
        raise ValueError("a mean's test needs at least 2 values")
    return _z_test(mean - limit, variance / n)


def ratio_of_means_versus(
    first: tuple[float, float, int], second: tuple[float, float, int], ratio: float
) -> MeanTest:
    """Large-sample z-tests of mean1 against ratio x mean2, each given as (mean, sample
    variance, n): the statistic is mean1 - ratio x mean2 over its standard error (Welch)."""
    (m1, v1, n1), (m2, v2, n2) = first, second
    if n1 < 2 or n2 < 2:
        raise ValueError("a mean's test needs at least 2 values on each side")
    return _z_test(m1 - ratio * m2, v1 / n1 + ratio**2 * v2 / n2)


def _z_test(excess: float, variance: float) -> MeanTest:
    if variance <= 0:
        # No spread at all: the values are what they are.
        return MeanTest(p_above=0.0 if excess > 0 else 1.0, p_below=0.0 if excess < 0 else 1.0)
    z = excess / math.sqrt(variance)
    return MeanTest(p_above=float(stats.norm.sf(z)), p_below=float(stats.norm.cdf(z)))


def corrected_alpha(alpha: float, tests: int) -> float:
    """Bonferroni: the level of each of `tests` tests so that the chance that any of them fails a
    good canary in one interval is at most `alpha`, whatever their dependence."""
    if tests < 1:
        return alpha
    return alpha / tests


def _binomial_greater(successes: int, trials: int, share: float) -> float:
    # One-sided exact binomial test of H1: the proportion is greater than `share`.
    _check_counts(successes, trials)
    if trials == 0:
        return 1.0
    p = float(stats.binomtest(successes, trials, share, alternative="greater").pvalue)
    return min(max(p, 0.0), 1.0)


def _count(value: float) -> int:
    # increase() extrapolates to the window's edges, so counts arrive as floats near integers.
    return max(round(value), 0)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
