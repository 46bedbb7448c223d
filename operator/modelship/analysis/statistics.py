"""Statistics of canary verdicts: Wilson intervals, exact proportion tests, latency tails."""

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

TestMethod = Literal["boschloo", "fisher"]


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


def tail_bound(canary: Histogram, stable: Histogram, latency: float) -> float:
    """The bound to compare tails at: the largest shared bound <= latency, else the least."""
    shared = canary.bounds() & stable.bounds()
    if not shared:
        raise ValueError("the histograms share no finite bucket bound")
    below = [b for b in shared if b <= latency]
    return max(below) if below else min(shared)


def compare_tails(canary: Histogram, stable: Histogram, latency: float) -> TailTest:
    """Test whether the canary sends a greater share of requests past `latency` than stable.

    A p99 is a statement about the slowest 1%: "the canary's p99 is worse" means "more of the
    canary's requests are slower than some latency". At a bucket bound the histogram counts that
    share exactly (no interpolation inside buckets), so the question becomes a one-sided
    two-proportion test on (slower than bound, total) for each side.
    """
    bound = tail_bound(canary, stable, latency)
    c_above, c_total = canary.above(bound), canary.total
    s_above, s_total = stable.above(bound), stable.total
    test = proportion_greater(c_above, c_total, s_above, s_total)
    return TailTest(
        bound=bound,
        canary_above=c_above,
        canary_total=c_total,
        stable_above=s_above,
        stable_total=s_total,
        p_value=test.p_value,
        method=test.method,
    )


def _count(value: float) -> int:
    # increase() extrapolates to the window's edges, so counts arrive as floats near integers.
    return max(round(value), 0)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
