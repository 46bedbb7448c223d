"""The metrics registry: our own, with latency buckets fine enough for p50..p99."""

from __future__ import annotations

import itertools

from modelship_runtime.server.metrics import RuntimeMetrics, latency_buckets


def test_buckets_span_100us_to_10s_finely() -> None:
    buckets = latency_buckets()
    assert buckets[0] == 0.0001 and buckets[-1] == 10.0
    ratios = [b / a for a, b in itertools.pairwise(buckets)]
    assert max(ratios) < 1.4


def test_two_instances_do_not_collide_and_skip_default_collectors() -> None:
    a, b = RuntimeMetrics("m", "1"), RuntimeMetrics("m", "2")
    a.requests["success"].inc()
    text = a.render().decode()
    series = 'modelship_requests_total{model="m",outcome="success",revision="1",variant="model"}'
    assert f"{series} 1.0" in text
    assert "process_cpu_seconds_total" not in text
    assert (
        b.registry.get_sample_value(
            "modelship_requests_total",
            {"model": "m", "revision": "2", "variant": "model", "outcome": "success"},
        )
        == 0
    )


def test_series_carry_the_served_variant() -> None:
    text = RuntimeMetrics("m", "3f2a", "int8-dynamic").render().decode()
    assert 'modelship_ready{model="m",revision="3f2a",variant="int8-dynamic"} 0.0' in text
