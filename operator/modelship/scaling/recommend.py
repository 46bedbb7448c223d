"""The replica recommendation: (spec parameters, metric readings, observed state, now) -> replicas.

Pure and deterministic: time and Prometheus come in as arguments, what must survive between
evaluations (stabilization history, panic, the scale-up allowance) comes in as `Memory` and
goes out as a new `Memory`, so every path, including no data, is a table test.
docs/autoscaling.md explains the algorithm with numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

# The API's ceiling on replicas: the bound when spec.scaling.maxReplicas is unset.
from modelship.api import REPLICAS_LIMIT

Signal = Literal["concurrencyPerReplica", "requestsPerSecondPerReplica", "p95LatencyMs"]

# A ratio computed from floats (1.1 / 0.1 = 11.000000000000002) must not round up a replica.
_EPSILON = 1e-9
# History entries kept at most; beyond it the two oldest merge (see _record).
HISTORY_LIMIT = 128


@dataclass(frozen=True)
class Reading:
    """One query's answer: a value, or None with the reason there is none."""

    value: float | None
    query: str = ""
    error: str | None = None  # why value is None: "connection refused", "empty result", ...

    @classmethod
    def of(cls, value: float, query: str = "") -> Reading:
        return cls(value=value, query=query)

    @classmethod
    def missing(cls, error: str, query: str = "") -> Reading:
        return cls(value=None, query=query, error=error)

    def problem(self, *, nan_allowed: bool = False) -> str | None:
        """Why this reading cannot be used, or None when it can."""
        if self.value is None:
            return self.error or "no data"
        if math.isnan(self.value):
            return None if nan_allowed else "result is NaN"
        if math.isinf(self.value):
            return f"result is {self.value}"
        if self.value < 0:
            return f"negative result {self.value:g}"
        return None


@dataclass(frozen=True)
class Readings:
    """What Prometheus said, model-wide totals over all serving revisions (queries.Queries).

    A field left None was not measured; for a configured target that is missing data.
    """

    concurrency: Reading | None = None
    concurrency_panic: Reading | None = None
    requests_per_second: Reading | None = None
    requests_per_second_panic: Reading | None = None
    p95_latency_ms: Reading | None = None


@dataclass(frozen=True)
class ScalingParams:
    """spec.scaling, resolved; field names follow the API one to one."""

    min_replicas: int = 1
    max_replicas: int | None = None  # None: REPLICAS_LIMIT
    concurrency_per_replica: float | None = None
    requests_per_second_per_replica: float | None = None
    p95_latency_ms: float | None = None
    tolerance: float = 0.1
    scale_down_stabilization_seconds: float = 300.0
    interval_seconds: float = 15.0
    # Scale-up allowance per interval: the larger of +100% and +4 replicas (HPA's default).
    scale_up_percent: float = 100.0
    scale_up_replicas: int = 4
    # Panic: the short window's load per ready replica at or above this multiple of the target
    # scales up at once and forbids scaling down for panic_hold_seconds. None disables it.
    panic_threshold: float | None = 2.0
    panic_hold_seconds: float = 60.0
    # p95 judges latency only above this many requests per second: a percentile of a handful
    # of requests is noise, and idle pods have no latency to speak of.
    latency_min_requests_per_second: float = 1.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError("min_replicas must be >= 0")
        if self.max_replicas is not None and self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("max_replicas must be >= max(min_replicas, 1)")
        for name in ("concurrency_per_replica", "requests_per_second_per_replica"):
            target = getattr(self, name)
            if target is not None and target <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.p95_latency_ms is not None and self.p95_latency_ms <= 0:
            raise ValueError("p95_latency_ms must be > 0")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if self.panic_threshold is not None and self.panic_threshold <= 1:
            raise ValueError("panic_threshold must be > 1 (a multiple of the target)")

    @property
    def upper(self) -> int:
        return self.max_replicas if self.max_replicas is not None else REPLICAS_LIMIT

    @property
    def has_targets(self) -> bool:
        return any(
            t is not None
            for t in (
                self.concurrency_per_replica,
                self.requests_per_second_per_replica,
                self.p95_latency_ms,
            )
        )

    def clamp(self, replicas: int) -> int:
        return min(max(replicas, self.min_replicas), self.upper)


@dataclass(frozen=True)
class Sample:
    """One past recommendation, for scale-down stabilization."""

    at: float
    replicas: int


@dataclass(frozen=True)
class ScaleUpWindow:
    """The interval the scale-up allowance is counted in: when it began and from how many."""

    started_at: float
    replicas: int


@dataclass(frozen=True)
class Memory:
    """What the autoscaler remembers between evaluations (kept in status.autoscaling).

    `history` holds only recommendations that can still be the highest of the stabilization
    window: strictly decreasing replicas, oldest first, none older than the window.
    """

    history: tuple[Sample, ...] = ()
    panic_until: float | None = None
    scale_up_window: ScaleUpWindow | None = None


@dataclass(frozen=True)
class ScalingState:
    """What is running now, observed in Kubernetes, plus the autoscaler's memory."""

    current_replicas: int  # replicas asked for now (the scale subresource's value)
    ready_replicas: int
    not_ready_replicas: int = 0  # created or starting, not yet ready
    memory: Memory = field(default_factory=Memory)


@dataclass(frozen=True)
class SignalRecommendation:
    """One signal's opinion: its value against its target and the replicas it asks for."""

    signal: Signal
    value: float | None  # per ready replica (load signals) or milliseconds (p95)
    target: float
    replicas: int | None  # None: no opinion (p95 under its target, or without traffic)
    note: str


@dataclass(frozen=True)
class MissingReading:
    """A reading the recommendation needed and did not get."""

    signal: Signal
    query: str
    error: str


@dataclass(frozen=True)
class Recommendation:
    """The decision, why, and the memory to keep for the next evaluation."""

    desired_replicas: int
    current_replicas: int
    recommended_replicas: int  # largest signal opinion, before limits and stabilization
    signals: tuple[SignalRecommendation, ...]
    reason: str
    held_for_missing_data: bool
    missing: tuple[MissingReading, ...]
    panicking: bool
    memory: Memory

    @property
    def scaled(self) -> bool:
        return self.desired_replicas != self.current_replicas


def recommend(
    params: ScalingParams, readings: Readings, state: ScalingState, now: float
) -> Recommendation:
    """Recommend the total serving replicas (all revisions together) for this evaluation."""
    current = state.current_replicas
    memory = _expire(state.memory, params, now)
    if not params.has_targets:
        return _hold(params, state, memory, now, "no autoscaling targets", record=False)
    if not memory.history and params.scale_down_stabilization_seconds > 0:
        # Without memory (first evaluation, or none for a whole window) the replicas running
        # now count as just recommended: a scale-down needs a full window of readings.
        memory = replace(memory, history=(Sample(at=now, replicas=current),))

    missing = _missing(params, readings)
    if missing:
        # Recorded as a recommendation of `current`: when data returns, a scale-down still
        # waits a full stabilization window of real readings.
        # The first gap in full; the rest (often the same outage) only by signal, so the
        # reason stays short enough for an Event. Recommendation.missing lists them all.
        first, rest = missing[0], missing[1:]
        why = f"no data for {first.signal}: `{first.query}`: {first.error}"
        if rest:
            why += f" (and {len(rest)} more: {', '.join(sorted({m.signal for m in rest}))})"
        return _hold(params, state, memory, now, why, missing=missing)

    signals = _signals(params, readings, state)
    opinions = [s for s in signals if s.replicas is not None]
    winner = max(opinions, key=lambda s: s.replicas or 0, default=None)
    wanted = winner.replicas if winner and winner.replicas is not None else current
    lead = winner.note if winner else "; ".join(s.note for s in signals)

    panics = _panics(params, readings, state)
    bursts = [p for p in panics if p.burst]
    panic_until = now + params.panic_hold_seconds if bursts else memory.panic_until
    panicking = panic_until is not None and now < panic_until
    notes: list[str] = []
    if panicking:
        # What the short window asks for counts at once: no tolerance, no scale-up limit.
        loudest = max(panics, key=lambda p: p.replicas, default=None)
        if bursts:
            lead = max(bursts, key=lambda p: p.replicas).note
        elif loudest is not None and loudest.replicas > wanted:
            # The reason names what decided: the short window, not the stable one.
            lead = f"{loudest.shown} while panicking"
        wanted = max([wanted, *(p.replicas for p in panics)])

    # The bounds are the spec's word: they shape the recommendation itself.
    recommended = params.clamp(wanted)
    if wanted > params.upper:
        notes.append(f"{wanted} wanted, capped at maxReplicas {params.upper}")
    elif wanted < params.min_replicas:
        notes.append(f"minReplicas {params.min_replicas}")

    window = memory.scale_up_window
    if panicking:
        desired = max(current, recommended)
        if desired > recommended:
            assert panic_until is not None
            notes.append(f"held at {desired}: panicking for {panic_until - now:.0f}s more")
    elif recommended > current:
        base = window.replicas if window else current
        allowance = max(
            math.ceil(base * (1 + params.scale_up_percent / 100) - _EPSILON),
            base + params.scale_up_replicas,
        )
        desired = min(recommended, max(allowance, current))
        if desired < recommended:
            notes.append(f"scale-up limited to {desired}")
    elif recommended < current:
        stabilized = max([s.replicas for s in memory.history] + [recommended])
        desired = min(current, stabilized)
        if desired > recommended:
            seconds = f"{params.scale_down_stabilization_seconds:g}s"
            held = "held at" if desired == current else "stabilized at"
            notes.append(f"{held} {desired}: highest recommendation in the last {seconds}")
    else:
        desired = current

    # Only a current value outside the bounds (the spec changed) gets here unbounded.
    desired, bound = _bounded(params, desired)
    notes.extend(bound)
    if desired > current and window is None:
        window = ScaleUpWindow(started_at=now, replicas=current)
    memory = replace(
        _record(memory, now, recommended, params),
        panic_until=panic_until if panicking else None,
        scale_up_window=window,
    )
    move = f"{current} -> {recommended}" if recommended != current else f"hold at {current}"
    reason = f"{lead}: {move}" + (f" ({'; '.join(notes)})" if notes else "")
    return Recommendation(
        desired_replicas=desired,
        current_replicas=current,
        recommended_replicas=recommended,
        signals=signals,
        reason=reason,
        held_for_missing_data=False,
        missing=(),
        panicking=panicking,
        memory=memory,
    )


def split_by_weight(
    total: int, canary_weight_percent: int, min_replicas: int = 1
) -> tuple[int, int]:
    """Share `total` replicas between stable and canary by the canary's traffic weight.

    The canary keeps at least one replica while its weight is above 0; the stable revision
    keeps at least max(min_replicas, 1) while its weight is above 0 (it still carries traffic,
    and is what a rollback falls back on). When `total` cannot hold both floors the sum
    exceeds it: a canary needs a pod to be a canary.
    """
    if total < 0:
        raise ValueError("total must be >= 0")
    if not 0 <= canary_weight_percent <= 100:
        raise ValueError("canary_weight_percent must be in [0, 100]")
    if canary_weight_percent == 0:
        return total, 0
    if canary_weight_percent == 100:
        return 0, max(total, 1)
    stable_floor = max(min_replicas, 1)
    share = math.floor(total * canary_weight_percent / 100 + 0.5)  # half up, not to even
    canary = max(1, min(share, total - stable_floor))
    stable = max(total - canary, stable_floor)
    return stable, canary


# --- signals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Load:
    """A load signal: a model-wide total that ready replicas share (concurrency, request rate)."""

    signal: Signal
    label: str
    target: float
    stable: Reading | None
    panic: Reading | None


def _loads(params: ScalingParams, readings: Readings) -> list[_Load]:
    out = []
    if params.concurrency_per_replica is not None:
        out.append(
            _Load(
                "concurrencyPerReplica",
                "concurrency",
                params.concurrency_per_replica,
                readings.concurrency,
                readings.concurrency_panic,
            )
        )
    if params.requests_per_second_per_replica is not None:
        out.append(
            _Load(
                "requestsPerSecondPerReplica",
                "requests/s",
                params.requests_per_second_per_replica,
                readings.requests_per_second,
                readings.requests_per_second_panic,
            )
        )
    return out


def _signals(
    params: ScalingParams, readings: Readings, state: ScalingState
) -> tuple[SignalRecommendation, ...]:
    out = [_load(load, params, state) for load in _loads(params, readings)]
    if params.p95_latency_ms is not None:
        out.append(
            _latency(
                _value(readings.p95_latency_ms),
                _value(readings.requests_per_second),
                params.p95_latency_ms,
                params,
                state,
            )
        )
    return tuple(out)


def _load(load: _Load, params: ScalingParams, state: ScalingState) -> SignalRecommendation:
    # Replicas = ceil(total / target): the total is served by ready pods only, so pods that
    # are starting never dilute it (they are never counted as idle).
    total, target = _value(load.stable), load.target
    current, ready = state.current_replicas, state.ready_replicas
    per_replica = total / ready if ready > 0 else None
    if per_replica is None:
        shown = f"{load.label} {total:.1f} in total, no ready replica"
    else:
        shown = f"{load.label} {per_replica:.1f}/replica"
        if abs(per_replica / target - 1) <= params.tolerance + _EPSILON:
            note = f"{shown} within {params.tolerance:.0%} of target {target:g}"
            return SignalRecommendation(load.signal, per_replica, target, current, note)
    replicas = _ceil(total / target)
    if replicas < current:
        # A scale-down removes only what the ready pods leave idle: each pod still starting is
        # capacity already asked for, kept as if it carried a full target's load.
        replicas = min(current, replicas + _not_ready(state))
    if per_replica is not None:
        shown += f" {'>' if per_replica > target else '<'} target {target:g}"
    return SignalRecommendation(load.signal, per_replica, target, replicas, shown)


def _latency(
    p95_ms: float,
    requests_per_second: float,
    target: float,
    params: ScalingParams,
    state: ScalingState,
) -> SignalRecommendation:
    # p95 only ever adds replicas: it is not proportional to replicas the way load is, so a
    # low p95 says nothing about how many replicas could go.
    signal: Signal = "p95LatencyMs"
    current = state.current_replicas
    floor = params.latency_min_requests_per_second
    if requests_per_second < floor:
        note = (
            f"p95 latency not judged without traffic "
            f"({requests_per_second:.2f} requests/s < {floor:g}/s)"
        )
        return SignalRecommendation(signal, None, target, None, note)
    shown = f"p95 latency {p95_ms:.1f}ms"
    ratio = p95_ms / target
    if ratio > 1 + params.tolerance + _EPSILON:
        # Proportional to the ready replicas: pods still starting are the help already on its
        # way, so a slow model does not keep adding while they warm up.
        replicas = max(current, _ceil(max(state.ready_replicas, 1) * ratio))
        return SignalRecommendation(
            signal, p95_ms, target, replicas, f"{shown} > target {target:g}ms"
        )
    if ratio >= 1 - params.tolerance - _EPSILON:
        # Near the target, removing capacity would push it over: hold.
        note = f"{shown} within {params.tolerance:.0%} of target {target:g}ms"
        return SignalRecommendation(signal, p95_ms, target, current, note)
    note = f"{shown} < target {target:g}ms (latency never scales down)"
    return SignalRecommendation(signal, p95_ms, target, None, note)


@dataclass(frozen=True)
class _Panic:
    """One load signal over the panic window."""

    replicas: int  # what the short window alone asks for
    burst: bool  # at or above the panic threshold
    shown: str  # the reading: "requests/s 5.2/replica in the panic window"
    note: str  # the reading as the cause of a panic


def _panics(params: ScalingParams, readings: Readings, state: ScalingState) -> list[_Panic]:
    threshold = params.panic_threshold
    if threshold is None:
        return []
    # Knative's rule: judged per ready replica, with at least one so a cold start can panic.
    capacity = max(state.ready_replicas, 1)
    out = []
    for load in _loads(params, readings):
        total = _value(load.panic)
        per_replica = total / capacity
        shown = f"{load.label} {per_replica:.1f}/replica in the panic window"
        note = f"{shown} >= {threshold:.0%} of target {load.target:g}: panic"
        burst = per_replica / load.target >= threshold
        out.append(_Panic(_ceil(total / load.target), burst, shown, note))
    return out


# --- missing data ----------------------------------------------------------------------------


def _missing(params: ScalingParams, readings: Readings) -> tuple[MissingReading, ...]:
    needed: list[tuple[Signal, Reading | None, bool]] = []
    for load in _loads(params, readings):
        needed.append((load.signal, load.stable, False))
        if params.panic_threshold is not None:
            needed.append((load.signal, load.panic, False))
    if params.p95_latency_ms is not None:
        # Latency is judged only with traffic, so the request rate is part of the signal. A
        # NaN p95 (no request in the window) is fine when the rate says there was no traffic.
        rate = readings.requests_per_second
        needed.append(("p95LatencyMs", rate, False))
        idle = (
            rate is not None
            and rate.problem() is None
            and _value(rate) < params.latency_min_requests_per_second
        )
        needed.append(("p95LatencyMs", readings.p95_latency_ms, idle))

    out: list[MissingReading] = []
    seen: set[str] = set()
    for signal, reading, nan_allowed in needed:
        if reading is None:
            gap = MissingReading(signal, "", "not measured (no query was run)")
        else:
            problem = reading.problem(nan_allowed=nan_allowed)
            if problem is None:
                continue
            gap = MissingReading(signal, reading.query, problem)
        # A query two signals share (the request rate) is named once.
        key = gap.query or signal
        if key not in seen:
            seen.add(key)
            out.append(gap)
    return tuple(out)


# --- memory ----------------------------------------------------------------------------------


def _expire(memory: Memory, params: ScalingParams, now: float) -> Memory:
    """Forget what no longer applies; times from the future (a clock step back) count as now."""
    horizon = now - params.scale_down_stabilization_seconds
    history = tuple(
        Sample(at=min(s.at, now), replicas=s.replicas) for s in memory.history if s.at >= horizon
    )
    panic_until = memory.panic_until
    if panic_until is not None:
        panic_until = (
            None if now >= panic_until else min(panic_until, now + params.panic_hold_seconds)
        )
    window = memory.scale_up_window
    if window is not None and not 0 <= now - window.started_at < params.interval_seconds:
        window = None
    return Memory(history=history, panic_until=panic_until, scale_up_window=window)


def _record(memory: Memory, now: float, replicas: int, params: ScalingParams) -> Memory:
    # An older sample with fewer (or as many) replicas can never again be the highest of a
    # window that also holds this one: drop it, so history stays short.
    kept = [s for s in memory.history if s.replicas > replicas]
    kept.append(Sample(at=now, replicas=replicas))
    while len(kept) > HISTORY_LIMIT:
        # Merge the two oldest into the older value at the newer time: a scale-down may come
        # later than it would have, never earlier.
        first, second = kept[0], kept[1]
        kept[:2] = [Sample(at=second.at, replicas=first.replicas)]
    return replace(memory, history=tuple(kept))


# --- helpers ---------------------------------------------------------------------------------


def _hold(
    params: ScalingParams,
    state: ScalingState,
    memory: Memory,
    now: float,
    why: str,
    *,
    missing: tuple[MissingReading, ...] = (),
    record: bool = True,
) -> Recommendation:
    current = state.current_replicas
    desired, bound = _bounded(params, current)
    if record:
        memory = _record(memory, now, params.clamp(current), params)
    reason = f"hold at {current}: {why}" + (f" ({'; '.join(bound)})" if bound else "")
    panicking = memory.panic_until is not None and now < memory.panic_until
    return Recommendation(
        desired_replicas=desired,
        current_replicas=current,
        recommended_replicas=current,
        signals=(),
        reason=reason,
        held_for_missing_data=bool(missing),
        missing=missing,
        panicking=panicking,
        memory=memory,
    )


def _bounded(params: ScalingParams, replicas: int) -> tuple[int, list[str]]:
    # The bounds are the spec's word, not a metric's: they hold even without data.
    if replicas < params.min_replicas:
        return params.min_replicas, [f"raised to minReplicas {params.min_replicas}"]
    if replicas > params.upper:
        return params.upper, [f"capped at maxReplicas {params.upper}"]
    return replicas, []


def _not_ready(state: ScalingState) -> int:
    # Pods asked for but not even created yet are as not-ready as those starting.
    return max(state.not_ready_replicas, state.current_replicas - state.ready_replicas, 0)


def _value(reading: Reading | None) -> float:
    # Only called after _missing found the reading usable.
    assert reading is not None and reading.value is not None
    return reading.value


def _ceil(x: float) -> int:
    return max(math.ceil(x - _EPSILON), 0)
