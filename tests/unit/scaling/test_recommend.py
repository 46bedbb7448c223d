"""The replica recommendation, as tables: every rule of docs/autoscaling.md has its rows here.

Readings are model-wide totals (what the queries return); the state says how many replicas
are asked for, ready and starting. Time is a plain number of seconds.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from modelship.scaling.recommend import (
    Memory,
    Reading,
    Readings,
    Recommendation,
    Sample,
    ScaleUpWindow,
    ScalingParams,
    ScalingState,
    recommend,
)

CONCURRENCY = ScalingParams(concurrency_per_replica=4, max_replicas=100)
RPS = ScalingParams(requests_per_second_per_replica=10, max_replicas=100)
P95 = ScalingParams(p95_latency_ms=50, max_replicas=100)
# Isolates a rule from the scale-down stabilization.
UNSTABILIZED = 0


def measured(
    *,
    concurrency: float | None = None,
    rps: float | None = None,
    p95: float | None = None,
    concurrency_panic: float | None = None,
    rps_panic: float | None = None,
) -> Readings:
    """Readings as Prometheus would answer; the panic window sees the stable value by default."""

    def reading(name: str, value: float | None) -> Reading | None:
        return None if value is None else Reading.of(value, f"<{name}>")

    return Readings(
        concurrency=reading("concurrency", concurrency),
        concurrency_panic=reading(
            "concurrency_panic", concurrency if concurrency_panic is None else concurrency_panic
        ),
        requests_per_second=reading("rps", rps),
        requests_per_second_panic=reading("rps_panic", rps if rps_panic is None else rps_panic),
        p95_latency_ms=reading("p95", p95),
    )


def state(
    current: int, ready: int | None = None, not_ready: int = 0, memory: Memory | None = None
) -> ScalingState:
    return ScalingState(
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        not_ready_replicas=not_ready,
        memory=memory or Memory(),
    )


def run(
    params: ScalingParams, current: int, steps: list[tuple[float, Readings]]
) -> list[Recommendation]:
    """Evaluate in order, applying each decision (all pods ready at once) and its memory."""
    memory = Memory()
    out = []
    for now, readings in steps:
        decision = recommend(params, readings, state(current, memory=memory), now)
        current, memory = decision.desired_replicas, decision.memory
        out.append(decision)
    return out


# --- tolerance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tolerance", "total", "desired"),
    [
        pytest.param(0.1, 40, 10, id="on target"),
        pytest.param(0.1, 44, 10, id="+10%: within"),
        pytest.param(0.1, 45, 12, id="+12.5%: up"),
        pytest.param(0.1, 36, 10, id="-10%: within"),
        pytest.param(0.1, 35, 9, id="-12.5%: down"),
        pytest.param(0.0, 41, 11, id="no tolerance: +2.5% is up"),
        pytest.param(0.2, 47, 10, id="tolerance 20%: +17.5% is within"),
    ],
)
def test_tolerance(tolerance: float, total: float, desired: int) -> None:
    params = replace(
        CONCURRENCY, tolerance=tolerance, scale_down_stabilization_seconds=UNSTABILIZED
    )
    decision = recommend(params, measured(concurrency=total), state(10), now=0)
    assert decision.desired_replicas == desired


def test_tolerance_is_named_in_the_reason() -> None:
    decision = recommend(CONCURRENCY, measured(concurrency=12.6), state(3), now=0)
    assert decision.reason == "concurrency 4.2/replica within 10% of target 4: hold at 3"
    assert not decision.scaled


# --- bounds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "current", "readings", "desired", "note"),
    [
        pytest.param(
            replace(CONCURRENCY, min_replicas=2, scale_down_stabilization_seconds=0),
            4,
            measured(concurrency=0),
            2,
            "minReplicas 2",
            id="down to minReplicas, not below",
        ),
        pytest.param(
            replace(CONCURRENCY, max_replicas=5),
            3,
            measured(concurrency=40, concurrency_panic=12),
            5,
            "10 wanted, capped at maxReplicas 5",
            id="up to maxReplicas, not above",
        ),
        pytest.param(
            replace(CONCURRENCY, max_replicas=5),
            8,
            measured(concurrency=32),
            5,
            "capped at maxReplicas 5",
            id="maxReplicas lowered below current: down at once",
        ),
        pytest.param(
            replace(CONCURRENCY, min_replicas=3),
            1,
            Readings(),
            3,
            "raised to minReplicas 3",
            id="minReplicas raised: up even without data",
        ),
        pytest.param(
            replace(CONCURRENCY, max_replicas=2),
            4,
            Readings(),
            2,
            "capped at maxReplicas 2",
            id="maxReplicas lowered: down even without data",
        ),
        pytest.param(
            ScalingParams(concurrency_per_replica=1, scale_up_replicas=5000),
            999,
            measured(concurrency=5000, concurrency_panic=0),
            1000,
            "5000 wanted, capped at maxReplicas 1000",
            id="no maxReplicas: the API's limit",
        ),
    ],
)
def test_bounds_always_hold(
    params: ScalingParams, current: int, readings: Readings, desired: int, note: str
) -> None:
    decision = recommend(params, readings, state(current), now=0)
    assert decision.desired_replicas == desired
    assert note in decision.reason


# --- stabilization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "now", "total", "desired", "note"),
    [
        pytest.param((), 0, 8, 10, "held at 10", id="no memory: a full window first"),
        pytest.param((Sample(0, 10),), 300, 8, 10, "held at 10", id="dip inside the window: hold"),
        pytest.param((Sample(0, 10), Sample(150, 2)), 301, 8, 2, None, id="window over: down"),
        pytest.param(
            (Sample(0, 10), Sample(200, 6)),
            301,
            8,
            6,
            "stabilized at 6",
            id="down to the highest of the window",
        ),
        pytest.param(
            (Sample(0, 10),), 100, 48, 12, None, id="stabilization never delays a scale-up"
        ),
    ],
)
def test_scale_down_stabilization(
    history: tuple[Sample, ...], now: float, total: float, desired: int, note: str | None
) -> None:
    memory = Memory(history=history)
    decision = recommend(CONCURRENCY, measured(concurrency=total), state(10, memory=memory), now)
    assert decision.desired_replicas == desired
    if note:
        assert f"({note}: highest recommendation in the last 300s)" in decision.reason


def test_a_dip_does_not_scale_down_but_a_lasting_drop_does() -> None:
    steps = [
        (0.0, measured(concurrency=40)),
        (15.0, measured(concurrency=8)),  # dip
        (30.0, measured(concurrency=40)),
        *((t, measured(concurrency=8)) for t in range(45, 346, 15)),
    ]
    desired = [d.desired_replicas for d in run(CONCURRENCY, 10, steps)]
    # The last 10 is recommended at t=30; it leaves the 300s window after t=330.
    assert desired == [10] * 23 + [2]


def test_history_stays_short() -> None:
    # Only recommendations that can still be the highest of the window are kept.
    memory = Memory(history=(Sample(0, 9), Sample(10, 7), Sample(20, 5)))
    decision = recommend(CONCURRENCY, measured(concurrency=32), state(9, memory=memory), 30)
    assert decision.memory.history == (Sample(0, 9), Sample(30, 8))


# --- scale-up limit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "total", "desired"),
    [
        pytest.param(3, 36, 7, id="3 -> 9 wanted: +4 is more than double"),
        pytest.param(10, 120, 20, id="10 -> 30 wanted: double is more than +4"),
        pytest.param(1, 40, 5, id="1 -> 10 wanted: +4"),
        pytest.param(3, 24, 6, id="within the allowance: all of it"),
    ],
)
def test_scale_up_limit(current: int, total: float, desired: int) -> None:
    # The panic window sees only 150% of the target: the burst is over, no panic.
    readings = measured(concurrency=total, concurrency_panic=current * 6)
    decision = recommend(CONCURRENCY, readings, state(current), now=0)
    assert decision.desired_replicas == desired
    assert not decision.panicking


def test_scale_up_limit_reason_names_the_recommendation_and_the_limit() -> None:
    readings = measured(concurrency=36, concurrency_panic=18)
    decision = recommend(CONCURRENCY, readings, state(3), now=0)
    assert decision.reason == "concurrency 12.0/replica > target 4: 3 -> 9 (scale-up limited to 7)"
    assert decision.recommended_replicas == 9
    assert decision.memory.scale_up_window == ScaleUpWindow(started_at=0, replicas=3)


def test_scale_up_limit_counts_per_interval_not_per_evaluation() -> None:
    readings = measured(concurrency=36, concurrency_panic=18)
    memory = Memory(scale_up_window=ScaleUpWindow(started_at=0, replicas=3))
    # A second evaluation inside the same 15s interval adds nothing beyond 3's allowance.
    again = recommend(CONCURRENCY, readings, state(7, memory=memory), now=5)
    assert again.desired_replicas == 7
    # The next interval counts from 7.
    later = recommend(CONCURRENCY, readings, state(7, memory=memory), now=15)
    assert later.desired_replicas == 9


# --- panic -----------------------------------------------------------------------------------


def test_burst_scales_up_at_once() -> None:
    # The minute-long window barely moved; the short window shows 5x the target per replica.
    readings = measured(concurrency=8, concurrency_panic=40)
    decision = recommend(CONCURRENCY, readings, state(2), now=100)
    assert decision.desired_replicas == 10  # beyond the +4 allowance
    assert decision.panicking
    assert decision.memory.panic_until == 160
    assert decision.reason == (
        "concurrency 20.0/replica in the panic window >= 200% of target 4: panic: 2 -> 10"
    )


def test_while_panicking_the_short_window_names_itself_when_it_decides() -> None:
    # Panicking since an earlier burst: the short window (no burst now) asks for more than the
    # stable one, and the reason says so rather than quoting the stable window.
    readings = measured(concurrency=8, concurrency_panic=14)
    decision = recommend(CONCURRENCY, readings, state(2, memory=Memory(panic_until=60)), now=10)
    assert decision.desired_replicas == 4
    assert decision.reason == (
        "concurrency 7.0/replica in the panic window while panicking: 2 -> 4"
    )


@pytest.mark.parametrize(
    ("panic_total", "ready", "panicking"),
    [
        pytest.param(16, 2, True, id="200% of target: panic"),
        pytest.param(15.9, 2, False, id="just under 200%: no panic"),
        pytest.param(8, 0, True, id="cold start: judged as one ready replica"),
    ],
)
def test_panic_threshold(panic_total: float, ready: int, panicking: bool) -> None:
    readings = measured(concurrency=8, concurrency_panic=panic_total)
    decision = recommend(CONCURRENCY, readings, state(2, ready=ready), now=0)
    assert decision.panicking is panicking


@pytest.mark.parametrize(
    ("now", "desired", "panicking"),
    [
        pytest.param(50, 10, True, id="while panicking: no scale-down"),
        pytest.param(100, 1, False, id="panic over: down"),
    ],
)
def test_no_scale_down_while_panicking(now: float, desired: int, panicking: bool) -> None:
    params = replace(CONCURRENCY, scale_down_stabilization_seconds=UNSTABILIZED)
    memory = Memory(panic_until=100)
    decision = recommend(params, measured(concurrency=0), state(10, memory=memory), now)
    assert (decision.desired_replicas, decision.panicking) == (desired, panicking)
    if panicking:
        assert decision.reason == (
            "concurrency 0.0/replica < target 4: 10 -> 1 "
            "(minReplicas 1; held at 10: panicking for 50s more)"
        )
        assert decision.memory.panic_until == 100
    else:
        assert decision.memory.panic_until is None


def test_a_panic_scale_up_is_then_held_by_stabilization() -> None:
    burst = measured(concurrency=8, concurrency_panic=40)
    calm = measured(concurrency=4, concurrency_panic=4)
    decisions = run(CONCURRENCY, 2, [(0, burst), (15, calm), (90, calm), (301, calm)])
    assert [d.desired_replicas for d in decisions] == [10, 10, 10, 1]
    assert [d.panicking for d in decisions] == [True, True, False, False]


def test_panic_can_be_disabled_and_then_needs_no_panic_readings() -> None:
    params = replace(CONCURRENCY, panic_threshold=None)
    readings = Readings(concurrency=Reading.of(8, "<concurrency>"))
    decision = recommend(params, readings, state(2), now=0)
    assert (decision.desired_replicas, decision.panicking) == (2, False)


# --- missing data ----------------------------------------------------------------------------

ALL_TARGETS = ScalingParams(
    concurrency_per_replica=4,
    requests_per_second_per_replica=10,
    p95_latency_ms=50,
    max_replicas=100,
    scale_down_stabilization_seconds=UNSTABILIZED,
)
# Would scale up on every signal (and panic) if it could be trusted.
HOT = measured(concurrency=100, rps=500, p95=400)
# Would scale down on every signal.
IDLE = measured(concurrency=0, rps=0, p95=math.nan)


CONC, RATE, LAT = "concurrencyPerReplica", "requestsPerSecondPerReplica", "p95LatencyMs"
REFUSED = "connection refused"


@pytest.mark.parametrize("base", [HOT, IDLE], ids=["would scale up", "would scale down"])
@pytest.mark.parametrize(
    ("field", "reading", "signal", "error"),
    [
        ("concurrency", Reading.missing(REFUSED, "<c>"), CONC, REFUSED),
        ("concurrency_panic", Reading.missing("empty result", "<cp>"), CONC, "empty result"),
        ("concurrency", Reading.of(math.nan, "<c>"), CONC, "result is NaN"),
        ("requests_per_second", Reading.missing("bad_data: parse", "<r>"), RATE, "bad_data: parse"),
        ("requests_per_second_panic", None, RATE, "not measured (no query was run)"),
        ("requests_per_second", Reading.of(-1, "<r>"), RATE, "negative result -1"),
        ("p95_latency_ms", Reading.missing("timeout after 5s", "<p>"), LAT, "timeout after 5s"),
    ],
)
def test_missing_data_holds(
    base: Readings, field: str, reading: Reading | None, signal: str, error: str
) -> None:
    readings = replace(base, **{field: reading})
    decision = recommend(ALL_TARGETS, readings, state(5), now=0)
    assert decision.desired_replicas == 5
    assert decision.held_for_missing_data
    # The request rate is also p95's traffic gate: its gap may come with p95's own.
    assert (decision.missing[0].signal, decision.missing[0].error) == (signal, error)
    query = reading.query if reading else ""
    assert decision.reason.startswith(f"hold at 5: no data for {signal}: `{query}`: {error}")


def test_p95_needs_the_request_rate_to_know_there_is_traffic() -> None:
    readings = Readings(
        requests_per_second=Reading.missing("connection refused", "<rps>"),
        p95_latency_ms=Reading.of(400, "<p95>"),
    )
    decision = recommend(P95, readings, state(3), now=0)
    assert decision.desired_replicas == 3
    assert decision.reason == "hold at 3: no data for p95LatencyMs: `<rps>`: connection refused"


def test_p95_nan_is_missing_data_with_traffic_but_not_without() -> None:
    nan = Reading.of(math.nan, "<p95>")
    busy = Readings(requests_per_second=Reading.of(20, "<rps>"), p95_latency_ms=nan)
    idle = Readings(requests_per_second=Reading.of(0, "<rps>"), p95_latency_ms=nan)
    assert recommend(P95, busy, state(3), now=0).held_for_missing_data
    assert not recommend(P95, idle, state(3), now=0).held_for_missing_data


def test_a_hold_for_missing_data_delays_the_next_scale_down_by_a_window() -> None:
    gone = Readings(
        concurrency=Reading.missing("connection refused", "<c>"),
        concurrency_panic=Reading.missing("connection refused", "<cp>"),
    )
    idle = measured(concurrency=0)
    decisions = run(CONCURRENCY, 5, [(0, gone), (600, gone), (615, idle), (901, idle)])
    assert [d.desired_replicas for d in decisions] == [5, 5, 5, 1]


# --- zero traffic ----------------------------------------------------------------------------


def test_zero_traffic_scales_down_to_min_only_after_the_window() -> None:
    zero = measured(rps=0.0)  # series present, rate 0: not missing data
    decisions = run(RPS, 5, [(float(t), zero) for t in range(0, 316, 15)])
    assert not any(d.held_for_missing_data for d in decisions)
    assert [d.desired_replicas for d in decisions] == [5] * 21 + [1]
    assert decisions[-1].reason == "requests/s 0.0/replica < target 10: 5 -> 1 (minReplicas 1)"


def test_zero_traffic_may_reach_zero_when_min_replicas_is_zero() -> None:
    params = replace(RPS, min_replicas=0, scale_down_stabilization_seconds=UNSTABILIZED)
    assert recommend(params, measured(rps=0.0), state(3), now=0).desired_replicas == 0


# --- p95 latency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "current", "ready", "readings", "desired"),
    [
        pytest.param(P95, 3, 3, measured(rps=30, p95=100), 6, id="2x the target: 2x replicas"),
        pytest.param(P95, 3, 3, measured(rps=0.5, p95=100), 3, id="no real traffic: no opinion"),
        pytest.param(
            replace(P95, scale_down_stabilization_seconds=UNSTABILIZED),
            3,
            3,
            measured(rps=30, p95=5),
            3,
            id="far under target: never down on its own",
        ),
        pytest.param(
            replace(ALL_TARGETS, p95_latency_ms=50),
            5,
            5,
            measured(concurrency=4, rps=10, p95=20),
            1,
            id="under target: others may scale down",
        ),
        pytest.param(
            replace(ALL_TARGETS, p95_latency_ms=50),
            5,
            5,
            measured(concurrency=4, rps=10, p95=48),
            5,
            id="near target: holds what others would remove",
        ),
        pytest.param(
            P95, 5, 2, measured(rps=30, p95=100), 5, id="pods starting are help on its way"
        ),
    ],
)
def test_p95_only_adds_replicas_and_only_with_traffic(
    params: ScalingParams, current: int, ready: int, readings: Readings, desired: int
) -> None:
    decision = recommend(params, readings, state(current, ready=ready), now=0)
    assert decision.desired_replicas == desired


def test_p95_reasons() -> None:
    up = recommend(P95, measured(rps=30, p95=100), state(3), now=0)
    assert up.reason == "p95 latency 100.0ms > target 50ms: 3 -> 6"
    idle = recommend(P95, measured(rps=0.0, p95=math.nan), state(3), now=0)
    assert idle.reason == (
        "p95 latency not judged without traffic (0.00 requests/s < 1/s): hold at 3"
    )


# --- not-ready pods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "ready", "not_ready", "total", "desired"),
    [
        pytest.param(6, 2, 4, 0, 4, id="idle ready pods go, starting ones stay"),
        pytest.param(6, 2, 4, 16, 6, id="8/replica on the ready ones: nothing is idle"),
        pytest.param(6, 2, 0, 16, 6, id="pods not even created count as starting"),
        pytest.param(6, 0, 6, 0, 6, id="nothing ready yet: hold"),
        pytest.param(6, 6, 0, 16, 4, id="all ready: the same load removes two"),
    ],
)
def test_not_ready_pods_are_never_idle(
    current: int, ready: int, not_ready: int, total: float, desired: int
) -> None:
    params = replace(
        CONCURRENCY, scale_down_stabilization_seconds=UNSTABILIZED, panic_threshold=None
    )
    decision = recommend(
        params,
        Readings(concurrency=Reading.of(total, "<c>")),
        state(current, ready=ready, not_ready=not_ready),
        now=0,
    )
    assert decision.desired_replicas == desired


# --- combined signals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "desired", "lead"),
    [
        pytest.param(measured(concurrency=24, rps=90, p95=80), 9, "requests/s", id="rps asks most"),
        pytest.param(
            measured(concurrency=36, rps=50, p95=60), 9, "concurrency", id="concurrency asks most"
        ),
        pytest.param(
            measured(concurrency=20, rps=50, p95=90), 9, "p95 latency", id="p95 asks most"
        ),
        pytest.param(
            measured(concurrency=4, rps=50, p95=20), 5, "requests/s", id="one holds: no scale-down"
        ),
    ],
)
def test_combined_signals_the_largest_wins(readings: Readings, desired: int, lead: str) -> None:
    decision = recommend(replace(ALL_TARGETS, panic_threshold=None), readings, state(5), now=0)
    assert decision.desired_replicas == desired
    assert decision.reason.startswith(lead)
    assert [(s.signal, s.target) for s in decision.signals] == [
        ("concurrencyPerReplica", 4),
        ("requestsPerSecondPerReplica", 10),
        ("p95LatencyMs", 50),
    ]


def test_each_signal_reports_its_value_against_its_target() -> None:
    readings = measured(concurrency=24, rps=90, p95=80)
    decision = recommend(replace(ALL_TARGETS, panic_threshold=None), readings, state(5), now=0)
    assert [(s.value, s.replicas) for s in decision.signals] == [
        (4.8, 6),
        (18.0, 9),
        (80, 8),
    ]


# --- no targets, invalid parameters ----------------------------------------------------------


def test_without_targets_replicas_stay() -> None:
    decision = recommend(ScalingParams(), Readings(), state(3), now=0)
    assert (decision.desired_replicas, decision.held_for_missing_data) == (3, False)
    assert decision.reason == "hold at 3: no autoscaling targets"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 5, "max_replicas": 2}, "max_replicas"),
        ({"concurrency_per_replica": 0}, "concurrency_per_replica"),
        ({"tolerance": 1.0}, "tolerance"),
        ({"panic_threshold": 1.0}, "panic_threshold"),
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScalingParams(**kwargs)  # type: ignore[arg-type]


# --- memory across a clock step --------------------------------------------------------------


def test_memory_from_the_future_counts_as_now() -> None:
    # The clock stepped back an hour: old entries must neither hold for an hour nor vanish.
    memory = Memory(
        history=(Sample(3600 + 100, 10),),
        panic_until=3600 + 160,
        scale_up_window=ScaleUpWindow(started_at=3600 + 100, replicas=3),
    )
    params = replace(CONCURRENCY, panic_threshold=None)
    decision = recommend(params, measured(concurrency=8), state(10, memory=memory), now=100)
    assert decision.desired_replicas == 10  # the 10 counts as recommended just now
    assert decision.memory.history[0] == Sample(100, 10)
    assert decision.panicking  # for at most panic_hold_seconds from now
    assert decision.memory.panic_until == 160
    assert decision.memory.scale_up_window is None


def test_prometheus_down_names_the_first_query_and_counts_the_rest() -> None:
    def down(query: str) -> Reading:
        return Reading.missing("connection refused", query)

    readings = Readings(
        concurrency=down("<c>"),
        concurrency_panic=down("<cp>"),
        requests_per_second=down("<r>"),
        requests_per_second_panic=down("<rp>"),
        p95_latency_ms=down("<p>"),
    )
    decision = recommend(ALL_TARGETS, readings, state(5), now=0)
    assert decision.reason == (
        "hold at 5: no data for concurrencyPerReplica: `<c>`: connection refused "
        "(and 4 more: concurrencyPerReplica, p95LatencyMs, requestsPerSecondPerReplica)"
    )
    assert [m.query for m in decision.missing] == ["<c>", "<cp>", "<r>", "<rp>", "<p>"]
