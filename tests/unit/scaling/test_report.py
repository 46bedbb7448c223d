"""The autoscaler's edges: spec -> parameters and queries, status <-> memory, outcome -> status,
condition and events (with real recommendations of the pure core)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from modelship import api
from modelship.scaling import (
    Memory,
    Reading,
    Readings,
    Sample,
    ScaleUpWindow,
    ScalingParams,
    ScalingState,
    recommend,
    report,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def md(scaling: dict[str, Any]) -> api.ModelDeployment:
    return api.ModelDeployment.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "ml", "uid": "u", "generation": 1},
            "spec": {"model": {"uri": "s3://m/model.onnx"}, "scaling": scaling},
        }
    )


def test_params_follow_the_spec_one_to_one() -> None:
    spec = md(
        {
            "minReplicas": 2,
            "maxReplicas": 9,
            "interval": "1.5m",
            "tolerance": 0.2,
            "scaleDownStabilizationSeconds": 120,
            "targets": {"concurrencyPerReplica": 4, "p95LatencyMs": 80},
        }
    ).spec.scaling
    assert report.params_of(spec) == ScalingParams(
        min_replicas=2,
        max_replicas=9,
        concurrency_per_replica=4,
        p95_latency_ms=80,
        tolerance=0.2,
        scale_down_stabilization_seconds=120,
        interval_seconds=90,
    )


@pytest.mark.parametrize(
    ("targets", "names"),
    [
        ({"concurrencyPerReplica": 4}, ["concurrency", "concurrency_panic"]),
        (
            {"requestsPerSecondPerReplica": 50},
            ["requests_per_second", "requests_per_second_panic"],
        ),
        # p95 reads the request rate too (latency is judged only with traffic), once.
        ({"p95LatencyMs": 80}, ["requests_per_second", "p95_latency_ms"]),
        (
            {"requestsPerSecondPerReplica": 50, "p95LatencyMs": 80},
            ["requests_per_second", "requests_per_second_panic", "p95_latency_ms"],
        ),
    ],
)
def test_only_the_queries_the_targets_read_run(targets: dict[str, float], names: list[str]) -> None:
    queries = report.queries_of(md({"targets": targets}), ["abc"], 5)
    assert list(queries) == names
    assert all('revision="abc"' in q for q in queries.values())


def test_queries_cover_both_revisions_of_a_rolling_update() -> None:
    queries = report.queries_of(md({"targets": {"concurrencyPerReplica": 4}}), ["b", "a"], 5)
    assert 'revision=~"a|b"' in queries["concurrency"]


def test_readings_are_named_like_the_queries() -> None:
    got = report.readings_of({"concurrency": Reading.of(3), "p95_latency_ms": Reading.of(9)})
    assert got == Readings(concurrency=Reading.of(3), p95_latency_ms=Reading.of(9))


def test_times_round_trip_and_bad_ones_read_as_none() -> None:
    assert report.rfc3339(T0) == "2026-01-01T00:00:00Z"
    assert report.epoch("2026-01-01T00:00:00Z") == T0
    assert report.epoch("yesterday") is None


PARAMS = ScalingParams(concurrency_per_replica=2, scale_down_stabilization_seconds=300)


EMPTY = Memory()


def evaluate(concurrency: float | None, current: int, memory: Memory = EMPTY) -> Any:
    reading = Reading.of(concurrency) if concurrency is not None else Reading.missing("down")
    readings = Readings(concurrency=reading, concurrency_panic=reading)
    return recommend(PARAMS, readings, ScalingState(current, current, 0, memory), T0)


def test_memory_survives_status() -> None:
    memory = Memory(
        history=(Sample(T0 - 30, 6), Sample(T0, 4)),
        panic_until=T0 + 60,
        scale_up_window=ScaleUpWindow(T0 - 5, 2),
    )
    rec = evaluate(8, 4, memory)  # holds at 4 (within tolerance): memory goes to status
    out = report.outcome(rec, {"concurrency": "q"}, T0, None)
    assert report.memory_of(out).history == rec.memory.history
    assert report.memory_of(out).panic_until == rec.memory.panic_until
    assert report.memory_of(None) == Memory()
    broken = out.model_copy(update={"history": [api.AutoscalingSample(at="never", replicas=9)]})
    assert report.memory_of(broken).history == ()


def test_a_scale_up_is_recorded_with_its_figures() -> None:
    rec = evaluate(12, 2)  # 6 per replica against 2: 6 replicas
    st = report.outcome(rec, {"concurrency": "sum(...)"}, T0, None)
    assert rec.scaled and rec.desired_replicas == 6
    assert (st.desired_replicas, st.recommended_replicas, st.last_scale_time) == (
        6,
        6,
        "2026-01-01T00:00:00Z",
    )
    assert st.last_scale_reason is not None and st.last_scale_reason.startswith("2 -> 6: ")
    assert "6.0/replica" in st.last_scale_reason
    assert [s.name for s in st.signals] == ["concurrencyPerReplica"]
    assert st.signals[0].value == 6 and st.signals[0].target == 2
    assert st.queries == {"concurrency": "sum(...)"}
    assert report.condition(st)[:2] == ("True", "MetricsAvailable")
    # The next evaluation keeps when and why it last scaled.
    later = report.outcome(evaluate(12, 6), {"concurrency": "sum(...)"}, T0 + 15, st)
    assert (later.last_scale_time, later.last_scale_reason) == (
        st.last_scale_time,
        st.last_scale_reason,
    )


def test_missing_data_holds_and_names_the_cause() -> None:
    held = report.outcome(evaluate(None, 3), {}, T0, None)
    assert held.held_for_missing_data and held.desired_replicas == 3
    status, reason, message = report.condition(held)
    assert (status, reason) == ("False", "MetricsUnavailable")
    assert "down" in message
    assert report.condition(None)[:2] == ("Unknown", "AwaitingMetrics")


def test_status_is_written_on_news_or_once_a_minute_never_at_rest() -> None:
    first = report.outcome(evaluate(6, 3), {}, T0, None)
    assert report.significant(first, None)
    moved = report.outcome(evaluate(6.1, 3), {}, T0 + 15, first)
    assert not report.significant(moved, first)
    late = report.outcome(evaluate(6.1, 3), {}, T0 + 60, first)
    assert report.significant(late, first)
    held = report.outcome(evaluate(None, 3), {}, T0 + 15, first)
    assert report.significant(held, first)
    # Idle: the same figures every time, however long: nothing to write.
    idle = report.outcome(evaluate(0, 1), {}, T0, None)
    still = report.outcome(evaluate(0, 1), {}, T0 + 3600, idle)
    assert not report.significant(still, idle)


def test_signal_values_are_rounded_for_status() -> None:
    rec = evaluate(2 / 3, 1)
    value = report.outcome(rec, {}, T0, None).signals[0].value
    assert value is not None and math.isclose(value, 0.6667)


def test_the_reconcile_serves_the_autoscalers_count_never_spec_replicas() -> None:
    scaled = md({"targets": {"concurrencyPerReplica": 2}, "maxReplicas": 5})
    assert report.served(scaled, None).spec.desired_replicas() == 1  # minReplicas, before any
    decided = report.outcome(evaluate(12, 2), {}, T0, None)  # 6 wanted
    served = report.served(scaled, decided)
    assert served.spec.desired_replicas() == 5  # within maxReplicas, whatever status says
    assert served.spec.revision() == scaled.spec.revision()  # the count is not the artifact
    assert scaled.spec.replicas == 1  # the parsed object is untouched
    plain = md({"minReplicas": 2})
    assert report.served(plain, decided) is plain
