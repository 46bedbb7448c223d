"""The autoscaler's PromQL: windows derived from the intervals, exact query text (goldens)."""

from __future__ import annotations

import pytest
from modelship.scaling.queries import (
    Windows,
    build_queries,
    derive_windows,
    prometheus_duration,
)


@pytest.mark.parametrize(
    ("scrape", "evaluation", "stable", "panic"),
    [
        pytest.param(15, 15, "1m", "30s", id="defaults: 15s scrape, 15s interval"),
        pytest.param(30, 15, "2m", "1m", id="prometheus-operator's 30s scrape"),
        pytest.param(5, 15, "1m", "15s", id="fast scrape: panic no shorter than the interval"),
        pytest.param(60, 15, "4m", "2m", id="slow scrape: four scrapes per stable window"),
        pytest.param(15, 60, "2m", "1m", id="slow interval: stable spans interval + scrape"),
        pytest.param(7.5, 10, "1m", "16s", id="fractions round up to whole seconds"),
    ],
)
def test_windows_follow_the_scrape_and_evaluation_intervals(
    scrape: float, evaluation: float, stable: str, panic: str
) -> None:
    windows = derive_windows(scrape, evaluation)
    assert (windows.stable, windows.panic) == (stable, panic)
    # Whatever the intervals: rate() sees >= 2 samples in the panic window, >= 4 in the stable
    # one, and the stable window is at least twice the panic one.
    assert windows.panic_seconds >= 2 * scrape
    assert windows.stable_seconds >= 4 * scrape
    assert windows.stable_seconds >= 2 * windows.panic_seconds


def test_windows_refuse_non_positive_intervals() -> None:
    with pytest.raises(ValueError, match="positive"):
        derive_windows(0, 15)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (16, "16s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3725, "1h2m5s")],
)
def test_prometheus_duration(seconds: int, text: str) -> None:
    assert prometheus_duration(seconds) == text


def test_queries_of_one_revision() -> None:
    queries = build_queries("ml", "iris", ["5f3c2a9b1d"], derive_windows(15, 15))
    sel = '{namespace="ml", model="iris", revision="5f3c2a9b1d"}'
    assert queries.all() == {
        "concurrency": f"sum(avg_over_time(modelship_requests_in_flight{sel}[1m]))",
        "concurrency_panic": f"sum(avg_over_time(modelship_requests_in_flight{sel}[30s]))",
        "requests_per_second": f"sum(rate(modelship_requests_total{sel}[1m]))",
        "requests_per_second_panic": f"sum(rate(modelship_requests_total{sel}[30s]))",
        "p95_latency_ms": "1000 * histogram_quantile(0.95, sum by (le) "
        f"(rate(modelship_request_duration_seconds_bucket{sel}[1m])))",
    }


def test_queries_of_a_canary_sum_both_revisions_in_a_stable_order() -> None:
    windows = Windows(stable_seconds=120, panic_seconds=60)
    queries = build_queries("ml", "fraud", ["b7", "a6", "b7"], windows)
    assert queries.concurrency == (
        "sum(avg_over_time(modelship_requests_in_flight"
        '{namespace="ml", model="fraud", revision=~"a6|b7"}[2m]))'
    )
    assert queries.requests_per_second_panic == (
        'sum(rate(modelship_requests_total{namespace="ml", model="fraud", revision=~"a6|b7"}[1m]))'
    )


def test_label_values_are_quoted_and_regex_escaped() -> None:
    windows = derive_windows(15, 15)
    queries = build_queries('we"ird', "m", ["v1.2", "v1+3"], windows)
    # JSON quoting is PromQL quoting; the regex metacharacters match literally.
    assert '{namespace="we\\"ird", model="m", revision=~"v1\\\\+3|v1\\\\.2"}' in (
        queries.requests_per_second
    )


def test_queries_need_a_revision() -> None:
    with pytest.raises(ValueError, match="revision"):
        build_queries("ml", "iris", [], derive_windows(15, 15))
