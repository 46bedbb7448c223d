"""The PromQL the autoscaler reads: one query per signal and window, built from the spec's identity.

Every query returns one model-wide total (not a per-pod average): the recommendation divides by
the ready replicas it observed in Kubernetes, so a pod that is starting (no series yet, or an
idle one) never dilutes the load. All revisions in the set are summed: during a canary the
total is what both revisions carry together, and `split_by_weight` shares the replicas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from modelship import durations

# Knative's stable window: long enough to smooth per-scrape noise, short enough to follow a
# ramp within a minute.
MIN_STABLE_WINDOW_SECONDS = 60
# rate() needs two samples in its window and loses one to a missed scrape or to the alignment
# of the window with the scrape times: four intervals keep at least two in every window
# (the same rule as Grafana's $__rate_interval).
STABLE_WINDOW_SCRAPES = 4
# The panic window is as short as Prometheus allows: two scrapes (rate()'s minimum), and no
# shorter than the evaluation interval so no evaluation judges a burst it only half saw.
PANIC_WINDOW_SCRAPES = 2

_RE2_SPECIAL = set(r"\.+*?()|[]{}^$")


@dataclass(frozen=True)
class Windows:
    """Range windows of the queries, in whole seconds."""

    stable_seconds: int
    panic_seconds: int

    @property
    def stable(self) -> str:
        return prometheus_duration(self.stable_seconds)

    @property
    def panic(self) -> str:
        return prometheus_duration(self.panic_seconds)


@dataclass(frozen=True)
class Queries:
    """One instant query per signal; each returns a single sample (or nothing: no data)."""

    # Requests in flight, summed over pods, averaged over the window (a gauge sampled once per
    # scrape is noisy; the average is what Little's law relates to rate x latency).
    concurrency: str
    concurrency_panic: str
    # Requests per second, all outcomes: a request that fails still took a slot.
    requests_per_second: str
    requests_per_second_panic: str
    # p95 of the request duration, in milliseconds, over the stable window; NaN without traffic.
    p95_latency_ms: str

    def all(self) -> dict[str, str]:
        """Every query by name (for logs, status and the docs)."""
        return {
            "concurrency": self.concurrency,
            "concurrency_panic": self.concurrency_panic,
            "requests_per_second": self.requests_per_second,
            "requests_per_second_panic": self.requests_per_second_panic,
            "p95_latency_ms": self.p95_latency_ms,
        }


def derive_windows(scrape_interval_seconds: float, evaluation_interval_seconds: float) -> Windows:
    """Choose the windows from how often Prometheus scrapes and how often the autoscaler runs.

    panic  = max(2 x scrape, evaluation interval)
    stable = max(60s, 4 x scrape, 2 x panic)

    2 x panic keeps the stable window clearly longer than the panic one (otherwise a burst
    looks the same in both and panic means nothing), and since panic >= evaluation, the stable
    window always spans at least one evaluation interval plus one scrape: no sample falls
    between two evaluations unseen.
    """
    if scrape_interval_seconds <= 0 or evaluation_interval_seconds <= 0:
        raise ValueError("scrape and evaluation intervals must be positive")
    scrape = math.ceil(scrape_interval_seconds)
    evaluation = math.ceil(evaluation_interval_seconds)
    panic = max(PANIC_WINDOW_SCRAPES * scrape, evaluation)
    stable = max(MIN_STABLE_WINDOW_SECONDS, STABLE_WINDOW_SCRAPES * scrape, 2 * panic)
    return Windows(stable_seconds=stable, panic_seconds=panic)


def build_queries(namespace: str, name: str, revisions: Iterable[str], windows: Windows) -> Queries:
    """Build the queries of one ModelDeployment over the revisions that serve it now."""
    selector = _selector(namespace, name, revisions)
    stable, panic = windows.stable, windows.panic

    def in_flight(window: str) -> str:
        return f"sum(avg_over_time(modelship_requests_in_flight{selector}[{window}]))"

    def request_rate(window: str) -> str:
        return f"sum(rate(modelship_requests_total{selector}[{window}]))"

    return Queries(
        concurrency=in_flight(stable),
        concurrency_panic=in_flight(panic),
        requests_per_second=request_rate(stable),
        requests_per_second_panic=request_rate(panic),
        p95_latency_ms=(
            "1000 * histogram_quantile(0.95, sum by (le) "
            f"(rate(modelship_request_duration_seconds_bucket{selector}[{stable}])))"
        ),
    )


def prometheus_duration(seconds: int) -> str:
    """A Prometheus duration, largest units first: 90 -> 1m30s."""
    return durations.prometheus_duration(seconds * 1000)


def _selector(namespace: str, name: str, revisions: Iterable[str]) -> str:
    # Strings reach PromQL through json.dumps: a JSON string is a valid PromQL string literal.
    chosen = sorted(set(revisions))
    if not chosen:
        raise ValueError("at least one revision is needed: without one the queries match nothing")
    if len(chosen) == 1:
        revision = f"revision={json.dumps(chosen[0])}"
    else:
        # Prometheus anchors regex matchers; sorting keeps the query text (and goldens) stable.
        pattern = "|".join(_re2_escape(r) for r in chosen)
        revision = f"revision=~{json.dumps(pattern)}"
    return f"{{namespace={json.dumps(namespace)}, model={json.dumps(name)}, {revision}}}"


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)
