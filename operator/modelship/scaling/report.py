"""The autoscaler's edges, pure: spec -> parameters and queries, readings -> Readings,
status.autoscaling <-> Memory, and a Recommendation -> status.autoscaling and its condition.

Kept apart from the I/O (modelship.autoscaler) so every translation is a table test, and apart
from the recommendation (recommend.py) so the core knows nothing of the API's shapes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelship import api, durations
from modelship.scaling.queries import Queries, build_queries, derive_windows
from modelship.scaling.recommend import (
    Memory,
    Reading,
    Readings,
    Recommendation,
    Sample,
    ScaleUpWindow,
    ScalingParams,
)
from modelship.timestamps import format_time, parse_time

CONDITION = "ScalingActive"
# Status is the memory that survives a restart, not a live feed: an evaluation that changed
# nothing but the figures is written at most this often (decisions and condition flips at once).
REFRESH_SECONDS = 60.0


def params_of(scaling: api.Scaling) -> ScalingParams:
    """spec.scaling as the recommendation's parameters."""
    targets = scaling.targets or api.ScalingTargets()
    return ScalingParams(
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        concurrency_per_replica=targets.concurrency_per_replica,
        requests_per_second_per_replica=targets.requests_per_second_per_replica,
        p95_latency_ms=targets.p95_latency_ms,
        tolerance=scaling.tolerance,
        scale_down_stabilization_seconds=float(scaling.scale_down_stabilization_seconds),
        interval_seconds=interval_seconds(scaling),
    )


def interval_seconds(scaling: api.Scaling) -> float:
    return durations.duration_ms(scaling.interval) / 1000


def queries_of(
    md: api.ModelDeployment, revisions: Iterable[str], scrape_interval_seconds: float
) -> dict[str, str]:
    """Only the queries the spec's targets read, by Readings field name."""
    windows = derive_windows(scrape_interval_seconds, interval_seconds(md.spec.scaling))
    built = build_queries(md.namespace, md.name, revisions, windows)
    return needed(params_of(md.spec.scaling), built)


def needed(params: ScalingParams, queries: Queries) -> dict[str, str]:
    """The subset of `queries` the targets in `params` read."""
    every = queries.all()
    names: list[str] = []
    if params.concurrency_per_replica is not None:
        names += ["concurrency", "concurrency_panic"]
    if params.requests_per_second_per_replica is not None:
        names += ["requests_per_second", "requests_per_second_panic"]
    if params.p95_latency_ms is not None:
        # p95 is judged only with traffic: the request rate is part of the signal.
        names += ["requests_per_second", "p95_latency_ms"]
    if params.panic_threshold is None:
        names = [n for n in names if not n.endswith("_panic")]
    return {n: every[n] for n in dict.fromkeys(names)}


def readings_of(answers: Mapping[str, Reading]) -> Readings:
    """Prometheus' answers, by Readings field name, as Readings (absent: not measured)."""
    return Readings(
        concurrency=answers.get("concurrency"),
        concurrency_panic=answers.get("concurrency_panic"),
        requests_per_second=answers.get("requests_per_second"),
        requests_per_second_panic=answers.get("requests_per_second_panic"),
        p95_latency_ms=answers.get("p95_latency_ms"),
    )


# --- time ------------------------------------------------------------------------------------


def rfc3339(epoch_seconds: float) -> str:
    """Seconds since the epoch as Kubernetes writes times (UTC, whole seconds)."""
    return format_time(datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC))


def epoch(text: str) -> float | None:
    """An RFC 3339 time as seconds since the epoch; None when it does not parse."""
    try:
        return parse_time(text).timestamp()
    except ValueError:
        return None


# --- memory <-> status -----------------------------------------------------------------------


def memory_of(recorded: api.AutoscalingStatus | None) -> Memory:
    """The memory a restarted operator picks up from status (what does not parse is dropped:
    an empty history makes the next evaluation count the running replicas as recommended)."""
    if recorded is None:
        return Memory()
    history = tuple(
        Sample(at=at, replicas=s.replicas)
        for s in recorded.history
        if (at := epoch(s.at)) is not None
    )
    panic_until = epoch(recorded.panic_until) if recorded.panic_until else None
    window = None
    started = epoch(recorded.scale_up_window_start) if recorded.scale_up_window_start else None
    if started is not None and recorded.scale_up_window_replicas is not None:
        window = ScaleUpWindow(started_at=started, replicas=recorded.scale_up_window_replicas)
    return Memory(history=history, panic_until=panic_until, scale_up_window=window)


def significant(new: api.AutoscalingStatus, prior: api.AutoscalingStatus | None) -> bool:
    """Whether an evaluation must be written now: a decision, a hold or its end, a panic, or
    figures that moved since a write older than REFRESH_SECONDS. A model at rest (the same
    figures each time) costs no write at all."""
    if prior is None:
        return True
    keys = (
        "desired_replicas",
        "held_for_missing_data",
        "panic_until",
        "last_scale_time",
        "queries",
    )
    if any(getattr(new, k) != getattr(prior, k) for k in keys):
        return True
    if (new.signals, new.reason) == (prior.signals, prior.reason):
        return False
    last, current = epoch(prior.evaluated_at), epoch(new.evaluated_at)
    return last is None or current is None or current - last >= REFRESH_SECONDS


def outcome(
    rec: Recommendation,
    queries: Mapping[str, str],
    now: float,
    prior: api.AutoscalingStatus | None,
) -> api.AutoscalingStatus:
    """One recommendation as status.autoscaling: the figures, the decision and the memory."""
    at = rfc3339(now)
    last_time = prior.last_scale_time if prior else None
    last_reason = prior.last_scale_reason if prior else None
    scaled_from = prior.scaled_from if prior else None
    if rec.scaled:
        last_time, scaled_from = at, rec.current_replicas
        last_reason = f"{rec.current_replicas} -> {rec.desired_replicas}: {rec.reason}"[:4096]
    memory = rec.memory
    window = memory.scale_up_window
    return api.AutoscalingStatus(
        desired_replicas=rec.desired_replicas,
        recommended_replicas=rec.recommended_replicas,
        evaluated_at=at,
        reason=rec.reason[:4096],
        held_for_missing_data=rec.held_for_missing_data,
        signals=[
            api.AutoscalingSignal(
                name=s.signal,
                value=round(s.value, 4) if s.value is not None else None,
                target=s.target,
                replicas=s.replicas,
                note=s.note[:1024],
            )
            for s in rec.signals
        ],
        queries=dict(queries),
        last_scale_time=last_time,
        last_scale_reason=last_reason,
        scaled_from=scaled_from,
        panic_until=rfc3339(memory.panic_until) if memory.panic_until is not None else None,
        scale_up_window_start=rfc3339(window.started_at) if window else None,
        scale_up_window_replicas=window.replicas if window else None,
        history=[
            api.AutoscalingSample(at=rfc3339(s.at), replicas=s.replicas) for s in memory.history
        ],
    )


def condition(
    autoscaling: api.AutoscalingStatus | None,
) -> tuple[api.ConditionStatus, str, str]:
    """ScalingActive of a model with scaling.targets: status, reason, message."""
    if autoscaling is None:
        return "Unknown", "AwaitingMetrics", "the autoscaler has not evaluated the model yet"
    if autoscaling.held_for_missing_data:
        return "False", "MetricsUnavailable", autoscaling.reason
    return "True", "MetricsAvailable", autoscaling.reason


def served(
    md: api.ModelDeployment, autoscaling: api.AutoscalingStatus | None
) -> api.ModelDeployment:
    """The model as the reconcile serves it: with scaling.targets, the autoscaler's count in
    place of spec.replicas (which the API holds at its default then), so the revisions, the
    canary's split and status all follow one number. The object itself is never written."""
    if not md.spec.autoscaled or autoscaling is None:
        return md
    spec = md.spec.model_copy(update={"replicas": autoscaling.desired_replicas})
    return md.model_copy(update={"spec": spec})


@dataclass(frozen=True)
class ScalingView:
    """What the autoscaler needs of one model between reconciles (kept by the reconciler)."""

    md: api.ModelDeployment
    revisions: tuple[str, ...]  # the revisions in traffic: stable, and the canary if any
    current: int  # replicas asked for now, all revisions in traffic together
    ready: int
    not_ready: int
    autoscaling: api.AutoscalingStatus | None  # as last written
