"""The canary state machine (pure): which step runs, how many pods each revision gets, what share
of requests the Gateway's routes give the canary (gatewayAPI router), when a step advances, and
the decisions (StepAdvanced, Paused, Resumed, Promoted, RolledBack) with their reasons. Time, the
manual action and what the Gateway acknowledged come in as arguments."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Literal

from modelship import api
from modelship.analysis import checks
from modelship.durations import duration_ms
from modelship.scaling.recommend import split_by_weight
from modelship.timestamps import format_time, parse_time

ACTION_ANNOTATION = "modelship.io/rollout-action"
Action = Literal["promote", "abort", "retry"]
ACTIONS: tuple[Action, ...] = ("promote", "abort", "retry")
# Which pods the model's Service selects: the stable revision's, both revisions', the canary's.
Route = Literal["stable", "both", "canary"]

# Said while a canary runs, so nobody reads the weight as exact.
ROUTER_LIMITS = (
    "replicas router: the weight is approximated by pod counts (granularity 1/replicas, at least "
    "one canary pod, keep-alive connections stay on their pod)"
)


# While the Gateway has not acknowledged the weights the routes carry: how soon to look again
# (weights just written are taken within a second), and when the route is refused or its
# Gateway missing (nothing moves until someone fixes it; the resync would look anyway).
ROUTE_POLL_SECONDS = 1.0
ROUTE_RECHECK_SECONDS = 10.0


def gateway_routed(spec: api.ModelDeploymentSpec) -> bool:
    """Whether a Gateway's routes split the traffic (rather than the Service's pods)."""
    return spec.rollout.traffic_router.type == "gatewayAPI"


def router_limits(spec: api.ModelDeploymentSpec) -> str:
    """What a reader should know about how exact the canary's weight is."""
    if gateway_routed(spec):
        return (
            "gatewayAPI router: the routes weight each revision's Service exactly; the canary "
            "gets its weight once its pods are ready and the Gateway accepted it"
        )
    return ROUTER_LIMITS


def pods_for(spec: api.ModelDeploymentSpec, wanted: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods at a step's weight. The replicas router splits the count by the
    weight; under a Gateway the weight is exact whatever the pods, so the stable keeps its full
    size (a rollback needs no scale-up) and the canary gets its share, at least one pod."""
    if not gateway_routed(spec):
        return split_by_weight(wanted, weight)
    if weight == 100:
        return wanted, max(wanted, 1)
    return wanted, max(1, math.ceil(wanted * weight / 100))


def uses_canary(spec: api.ModelDeploymentSpec) -> bool:
    """Whether a new revision goes through canary steps rather than one switch."""
    return list(spec.rollout.steps) != [100]


@dataclass(frozen=True)
class Pods:
    """One revision's Deployment as the state machine needs it."""

    wanted: int  # spec.replicas of its Deployment
    ready: int
    rolled_out: bool  # every wanted pod of the current template is ready


@dataclass(frozen=True)
class Step:
    """What the state machine decides in one reconcile."""

    canary_replicas: int
    stable_replicas: int
    route: Route
    canary: api.Canary | None
    decision: api.Decision | None = None
    # gatewayAPI: the canary's share of requests the routes carry after this reconcile.
    traffic: int = 0
    outcome: Literal["promoted", "rolled_back"] | None = None
    requeue_after: float | None = None


def step(
    spec: api.ModelDeploymentSpec,
    revision: str,
    stable_revision: str,
    prior: api.Canary | None,
    *,
    canary: Pods | None,
    stable: Pods,
    action: Action | None,
    now: datetime.datetime,
    measured: checks.IntervalVerdict | None = None,
    routed: int | None = None,
) -> Step:
    """Advance the canary of `revision` against `stable_revision` by one reconcile.

    With `spec.rollout.analysis`, a step whose interval ended advances only on the verdict of
    that interval (`measured`, read from Prometheus by the caller when `analysis_due`).

    Under the gatewayAPI router, `routed` is the canary weight the Gateway accepted on the
    routes as they are (None: not accepted, or no Gateway): a step's clock starts, and the
    canary is promoted, only once the Gateway carries what the step asks."""
    steps = list(spec.rollout.steps)
    gateway = gateway_routed(spec)
    wanted = spec.desired_replicas()
    stamp = format_time(now)
    same = prior is not None and prior.revision == revision
    index = prior.step if prior is not None and same else 0
    index = min(index, len(steps) - 1)
    started = prior.step_started_at if prior is not None and same else None
    was_paused = bool(prior is not None and same and prior.paused)
    kept = prior if prior is not None and same else None
    held = bool(kept is not None and kept.held_by_analysis)
    tally = _Tally.of(kept)
    # The share the routes gave the canary so far: it moves only once the step's pods are ready.
    carried = (kept.traffic_weight or 0) if kept is not None else 0

    def roll_back(why: str) -> Step:
        return _rolled_back(
            revision,
            stable_revision,
            wanted=max(wanted, stable.wanted),
            reason=f"revision {revision} rolled back {why}",
            at=stamp,
        )

    if action == "abort":
        return roll_back(
            f"by the {ACTION_ANNOTATION}: abort annotation at step {index + 1}/{len(steps)} "
            f"(weight {steps[index]}%)"
        )
    decision: api.Decision | None = None
    if action == "promote" and steps[index] != 100:
        index, started, held = len(steps) - 1, None, False
        decision = api.Decision(
            action="StepAdvanced",
            reason=f"promoted by the {ACTION_ANNOTATION}: promote annotation: revision "
            f"{revision} goes to 100% now",
            at=stamp,
        )
    weight = steps[index]

    if weight == 100:
        # Promotion: the canary takes the whole count; the Service moves to it once all its
        # pods are ready; the stable keeps its pods until then. Under a Gateway the routes
        # move first, and the promotion waits until the Gateway carries them.
        full = canary is not None and canary.wanted == wanted and canary.rolled_out
        if full and canary is not None and (not gateway or routed == 100):
            return Step(
                canary_replicas=wanted,
                stable_replicas=stable.wanted,
                route="canary",
                canary=None,
                decision=api.Decision(
                    action="Promoted",
                    reason=f"revision {revision} promoted after {len(steps)} steps: "
                    f"{canary.ready}/{wanted} replicas ready; revision {stable_revision} drains, "
                    "then sleeps at zero replicas",
                    at=stamp,
                ),
                outcome="promoted",
                traffic=100,
            )
        moving = full and gateway
        now_carried = 100 if moving else carried
        return Step(
            canary_replicas=wanted,
            stable_replicas=stable.wanted,
            route="both",
            canary=_status(
                revision,
                index,
                weight,
                started=None,
                pods=(wanted, stable.wanted),
                paused=False,
                traffic=now_carried if gateway else None,
            ),
            decision=decision,
            traffic=now_carried,
            requeue_after=_route_wait(routed) if moving else None,
        )

    stable_n, canary_n = pods_for(spec, wanted, weight)
    canary_ready = canary is not None and canary.wanted == canary_n and canary.rolled_out
    # Capacity first: the stable shrinks only once the canary's pods of this step are ready.
    stable_target = stable_n if canary_ready else max(stable.wanted, stable_n)
    # Requests go to the canary's pods only once they are all there.
    traffic = weight if canary_ready else carried
    settled = canary_ready and stable.wanted == stable_n and (not gateway or routed == traffic)
    paused = spec.rollout.paused
    requeue: float | None = None
    analysis = spec.rollout.analysis
    if paused and not was_paused:
        decision = api.Decision(
            action="Paused",
            reason=f"spec.rollout.paused holds revision {revision} at step {index + 1}/"
            f"{len(steps)} (weight {weight}%)",
            at=stamp,
        )
    elif was_paused and not paused:
        started = stamp if settled else None  # a resumed step runs a whole interval
        decision = api.Decision(
            action="Resumed",
            reason=f"spec.rollout.paused is false: step {index + 1}/{len(steps)} (weight "
            f"{weight}%) of revision {revision} runs again for {spec.rollout.interval}",
            at=stamp,
        )
    elif settled and started is None:
        started = stamp
    if settled and started is not None and not paused and not held:
        interval = duration_ms(spec.rollout.interval) / 1000
        left = interval - (now - parse_time(started)).total_seconds()
        verdict_reason = f"ran for {spec.rollout.interval}"
        if left <= 0 and analysis is not None:
            if measured is None:
                left = 1.0  # due but not measured yet: the next reconcile measures it
            else:
                judged = checks.decide(
                    tally.state(index, len(steps)), measured, analysis_policy(analysis)
                )
                tally = _Tally.of_state(judged.state, measured)
                verdict_reason = f"passed its analysis ({measured.reason})"
                if judged.action == "RollBack":
                    return roll_back(f"at step {index + 1}/{len(steps)}: {judged.reason}")
                if judged.action == "Continue":
                    started, left = stamp, interval  # the next interval starts now
                elif judged.action == "Pause":
                    held, left = True, interval
                    decision = api.Decision(action="Paused", reason=judged.reason, at=stamp)
        if left <= 0:
            following = steps[index + 1]
            decision = api.Decision(
                action="StepAdvanced",
                reason=f"step {index + 1}/{len(steps)} (weight {weight}%) of revision {revision} "
                f"{verdict_reason}: step {index + 2} (weight {following}%) begins",
                at=stamp,
            )
            # The next reconcile, right away, brings the next step's pods.
            next_stable, next_canary = (
                (stable.wanted, wanted) if following == 100 else pods_for(spec, wanted, following)
            )
            return Step(
                canary_replicas=max(canary_n, next_canary),
                stable_replicas=stable_target,
                route="both",
                canary=tally.apply(
                    _status(
                        revision,
                        index + 1,
                        following,
                        started=None,
                        pods=(next_canary, next_stable),
                        paused=False,
                        traffic=traffic if gateway else None,
                    )
                ),
                decision=decision,
                requeue_after=0.0,
                traffic=traffic,
            )
        requeue = None if held else left
    elif gateway and canary_ready and routed != traffic:
        # The routes carry this step's weight once the Gateway takes them: look again soon.
        requeue = _route_wait(routed)
    status = _status(
        revision,
        index,
        weight,
        started=started,
        pods=(canary_n, stable_n),
        paused=paused,
        traffic=traffic if gateway else None,
    )
    return Step(
        canary_replicas=canary_n,
        stable_replicas=stable_target,
        route="both",
        canary=tally.apply(status.model_copy(update={"held_by_analysis": held})),
        decision=decision,
        requeue_after=requeue,
        traffic=traffic,
    )


def _route_wait(routed: int | None) -> float:
    """When to look again at routes the Gateway does not carry as wanted yet."""
    return ROUTE_POLL_SECONDS if routed is not None else ROUTE_RECHECK_SECONDS


def _rolled_back(revision: str, stable_revision: str, *, wanted: int, reason: str, at: str) -> Step:
    """Traffic back to the stable revision at full size; the canary to zero."""
    return Step(
        canary_replicas=0,
        stable_replicas=wanted,
        route="stable",
        canary=None,
        decision=api.Decision(
            action="RolledBack",
            reason=f"{reason}; revision {stable_revision} takes all traffic again",
            at=at,
        ),
        outcome="rolled_back",
    )


def analysis_policy(analysis: api.Analysis) -> checks.Policy:
    """What the analysis core holds a canary to, from spec.rollout.analysis."""
    return checks.Policy.from_analysis(analysis)


def analysis_due(
    spec: api.ModelDeploymentSpec, prior: api.Canary | None, now: datetime.datetime
) -> bool:
    """Whether the canary's step interval ended and its analysis must be measured now."""
    if spec.rollout.analysis is None or prior is None or prior.step_started_at is None:
        return False
    if spec.rollout.paused or prior.held_by_analysis or prior.weight == 100:
        return False
    interval = duration_ms(spec.rollout.interval) / 1000
    return (now - parse_time(prior.step_started_at)).total_seconds() >= interval


@dataclass(frozen=True)
class _Tally:
    """The analysis counters a canary carries from interval to interval, and the last figures."""

    failures: int = 0
    inconclusive: int = 0
    missing_data: int = 0
    results: tuple[api.CheckStatus, ...] = ()

    @classmethod
    def of(cls, canary: api.Canary | None) -> _Tally:
        if canary is None:
            return cls()
        return cls(
            canary.failures, canary.inconclusive, canary.missing_data, tuple(canary.analysis)
        )

    @classmethod
    def of_state(cls, state: checks.StepState, measured: checks.IntervalVerdict) -> _Tally:
        return cls(
            state.failures,
            state.inconclusive,
            state.missing_data,
            tuple(
                api.CheckStatus(
                    name=r.name,
                    verdict=r.verdict,
                    reason=r.reason[:2048],
                    value=_finite(r.value),
                    baseline=_finite(r.baseline),
                    threshold=_finite(r.threshold),
                    samples=r.samples,
                    baseline_samples=r.baseline_samples,
                    p_value=_finite(r.p_value),
                )
                for r in measured.results
            ),
        )

    def state(self, index: int, steps: int) -> checks.StepState:
        return checks.StepState(
            step=index,
            steps=steps,
            failures=self.failures,
            inconclusive=self.inconclusive,
            missing_data=self.missing_data,
        )

    def apply(self, canary: api.Canary) -> api.Canary:
        return canary.model_copy(
            update={
                "failures": self.failures,
                "inconclusive": self.inconclusive,
                "missing_data": self.missing_data,
                "analysis": list(self.results),
            }
        )


def _finite(value: float | None) -> float | None:
    # NaN and infinities are not JSON: status says "no value" instead.
    return value if value is not None and math.isfinite(value) else None


def _status(
    revision: str,
    index: int,
    weight: int,
    *,
    started: str | None,
    pods: tuple[int, int],
    paused: bool,
    traffic: int | None,
) -> api.Canary:
    canary_replicas, stable_replicas = pods
    return api.Canary(
        revision=revision,
        step=index,
        weight=weight,
        step_started_at=started,
        canary_replicas=canary_replicas,
        stable_replicas=stable_replicas,
        paused=paused,
        traffic_weight=traffic,
    )


def parse_action(annotations: dict[str, str]) -> tuple[Action | None, str | None]:
    """The one-off action asked by annotation, or the error naming a value that is none."""
    raw = annotations.get(ACTION_ANNOTATION)
    if raw is None:
        return None, None
    value = raw.strip().lower()
    for action in ACTIONS:
        if value == action:
            return action, None
    return None, (
        f"annotation {ACTION_ANNOTATION}: {raw!r} is not an action (promote, abort or retry); "
        "it was removed and nothing was done"
    )
