"""Pure status transitions: facts about the children -> phase, conditions and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelship import api, rollout, traffic
from modelship.builds import BuildState, BuildSummary
from modelship.scaling import report
from modelship.timestamps import parse_time

NOT_IMPLEMENTED = "NotImplemented"
NAME_CONFLICT = "NameConflict"
HOST_PATH_REFUSED = "HostPathRefused"


@dataclass(frozen=True)
class Facts:
    """What the operator knows after acting, as input of the status transition."""

    revision: str
    job_name: str
    artifact: str
    build_state: BuildState
    summary: BuildSummary | None
    build_message: str
    log_tail: str | None
    serving_revision: str | None
    rolled_out: bool
    replicas: int
    ready_replicas: int
    selector: str
    url: str
    # The Monitoring condition (status, reason, message), None when no monitoring is wanted.
    monitoring: tuple[api.ConditionStatus, str, str] | None = None
    monitoring_status: api.MonitoringStatus | None = None
    feedback_key_secret: str | None = None
    # The current revision while it starts beside the one that serves (None once it serves).
    starting: Starting | None = None
    # The revision the Service moved away from in this reconcile, if it moved.
    replaced: str | None = None
    retired: tuple[api.RetiredRevision, ...] = ()
    # The current revision's deadline clock while it starts, and its failure once it missed it.
    starting_clock: api.StartingRevision | None = None
    failed: api.FailedRevision | None = None
    # The canary in progress, and the rollout decision this reconcile took (if any).
    canary: api.Canary | None = None
    decision: api.Decision | None = None
    # gatewayAPI router: what the Gateway says of the routes, and the model's URL through it.
    traffic: traffic.Verdict | None = None
    gateway_url: str | None = None
    # Children the model needs whose names another owner holds ("Kind namespace/name").
    conflicts: tuple[str, ...] = ()
    # Why nothing new is built or started (a host path outside development mode).
    refused: str | None = None
    # What the current revision's pods that are not ready say (pods.describe), "" when nothing.
    pods_said: str = ""


@dataclass(frozen=True)
class Starting:
    """Readiness of a revision that starts while another one serves."""

    ready_replicas: int
    wanted: int


@dataclass(frozen=True)
class EventSpec:
    """An Event to record on the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _unimplemented(spec: api.ModelDeploymentSpec) -> list[tuple[str, str]]:
    """Accepted fields whose feature is not built yet: (condition type, message)."""
    found: list[tuple[str, str]] = []
    if spec.runtime.type == "triton":
        found.append(
            (
                "TritonRuntime",
                "spec.runtime.type triton is accepted but not implemented yet: the model is "
                "served by onnxruntime",
            )
        )
    return found


@dataclass(frozen=True)
class _Conditions:
    """Makes conditions that keep lastTransitionTime unless their status flips."""

    prior: dict[str, api.Condition]
    generation: int
    now: str

    def make(
        self, type_: str, status: api.ConditionStatus, reason: str, message: str = ""
    ) -> api.Condition:
        old = self.prior.get(type_)
        since = old.last_transition_time if old is not None and old.status == status else self.now
        return api.Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=self.generation,
        )


def _build_status(facts: Facts) -> api.BuildStatus:
    summary = facts.summary
    error = None
    if facts.build_state == "Failed":
        error = (summary.error if summary and summary.error else None) or facts.build_message
        error = error or "the build Job failed without a summary"
    return api.BuildStatus(
        revision=facts.revision,
        job=facts.job_name,
        state=facts.build_state,
        selected=summary.selected if summary else None,
        source_sha256=summary.source_sha256 if summary else None,
        variants=list(summary.variants) if summary else [],
        error=error,
        log_tail=facts.log_tail if facts.build_state == "Failed" else None,
    )


def derive_status(
    spec: api.ModelDeploymentSpec,
    generation: int,
    prior: api.ModelDeploymentStatus,
    facts: Facts,
    now: str,
) -> api.ModelDeploymentStatus:
    """Compute the next status; identical inputs give an identical status (no spurious writes)."""
    mk = _Conditions({c.type: c for c in prior.conditions}, generation, now)
    build = _build_status(facts)
    desired = spec.desired_replicas()
    stable = prior.revisions.stable if prior.revisions else None
    current = api.RevisionRef(
        revision=facts.revision,
        digest=facts.summary.digest if facts.summary and facts.summary.ok else None,
        artifact=facts.artifact if facts.build_state == "Succeeded" else None,
    )

    selected = facts.serving_revision
    serving = selected is not None and facts.ready_replicas > 0
    serves_note = f"revision {selected} serves {facts.ready_replicas}/{desired} replicas"
    keeps_serving = serving and selected != facts.revision
    established = stable is not None and stable.revision == facts.revision
    phase: api.Phase
    # The spec cannot be reached by itself: kstatus reads Stalled=True as Failed.
    stalled = False
    if facts.refused is not None:
        phase = "Degraded" if keeps_serving else "Failed"
        reason, message, stalled = HOST_PATH_REFUSED, facts.refused, True
    elif facts.conflicts:
        phase = "Degraded" if keeps_serving else "Failed"
        reason, message, stalled = NAME_CONFLICT, _conflict_message(facts.conflicts), True
    elif facts.build_state == "Failed":
        phase = "Degraded" if keeps_serving else "Failed"
        reason, message = "BuildFailed", f"build of revision {facts.revision} failed: {build.error}"
        stalled = True
    elif facts.failed is not None:
        phase = "Degraded" if keeps_serving else "Failed"
        reason, message, stalled = facts.failed.reason, facts.failed.message, True
    elif facts.build_state == "Running":
        phase, reason = "Building", "BuildRunning"
        message = f"building revision {facts.revision} (Job {facts.job_name})"
    elif facts.canary is not None:
        canary = facts.canary
        phase, reason = "Progressing", "CanaryPaused" if canary.paused else "CanaryStep"
        message = (
            f"canary revision {canary.revision} at step {canary.step + 1}/"
            f"{len(spec.rollout.steps)} (weight {canary.weight}%): {canary.canary_replicas} "
            f"canary and {canary.stable_replicas} stable pods wanted"
            f"{'; held by spec.rollout.paused' if canary.paused else ''}"
            f"{_traffic_note(canary)}; {rollout.router_limits(spec)}"
        )
    elif facts.starting is not None:
        phase, reason = "Deploying", "RevisionStarting"
        message = (
            f"starting revision {facts.revision}: {facts.starting.ready_replicas}/"
            f"{facts.starting.wanted} replicas ready; the Service moves to it when all are"
        )
    elif facts.rolled_out and selected == facts.revision:
        phase, reason = "Ready", "ScaledToZero" if desired == 0 else "Serving"
        message = f"revision {facts.revision} serves {facts.ready_replicas}/{desired} replicas"
    elif (
        established
        and selected == facts.revision
        and (growing := _scaling_up(spec, prior.autoscaling, facts.ready_replicas, now))
    ):
        # Pods the autoscaler just added are starting: progress, not a loss.
        phase, reason = "Deploying", "ScalingUp"
        message = (
            f"revision {facts.revision} serves {facts.ready_replicas}/{desired} replicas: "
            f"scaled up from {growing.scaled_from} at {growing.last_scale_time}, "
            f"{desired - facts.ready_replicas} starting"
        )
    elif established and selected == facts.revision and facts.ready_replicas >= desired:
        # More ready pods than wanted: a scale-down's pods are draining. Nothing is missing.
        phase, reason = "Ready", "Serving"
        message = (
            f"revision {facts.revision} serves {desired}/{desired} replicas "
            f"({facts.ready_replicas - desired} more draining after a scale-down)"
        )
    elif established and selected == facts.revision:
        # A revision that served fully and lost pods: degraded, never "rolling out".
        phase, reason = "Degraded", "ReplicasUnavailable"
        message = f"revision {facts.revision}: {facts.ready_replicas}/{desired} replicas ready"
        if facts.pods_said:
            message += f" ({facts.pods_said})"
    else:
        phase, reason = "Deploying", "RollingOut"
        message = (
            f"starting revision {facts.revision}: {facts.ready_replicas}/{desired} replicas ready"
        )
        if facts.pods_said:
            message += f" ({facts.pods_said})"
    if keeps_serving and phase != "Ready":
        message += f"; {serves_note}"

    progressing = phase in ("Building", "Deploying", "Progressing")
    degraded = phase in ("Degraded", "Failed")
    # Ready says whether the model answers: the revision the Service selects has a ready pod,
    # whatever else is being built, started or failing beside it.
    answers = phase == "Ready" or serving
    conditions = [
        mk.make(
            "Ready",
            "True" if answers else "False",
            reason if phase == "Ready" or not answers else "Serving",
            message if phase == "Ready" or not answers else serves_note,
        ),
        mk.make(
            "Progressing",
            "True" if progressing else "False",
            reason if progressing else ("Complete" if phase == "Ready" else reason),
            message,
        ),
        mk.make(
            "Degraded",
            "True" if degraded else "False",
            reason if degraded else "AsExpected",
            message if degraded else "",
        ),
    ]
    if facts.refused is not None:
        conditions.append(mk.make("BuildSucceeded", "False", HOST_PATH_REFUSED, facts.refused))
    elif build.state == "Succeeded":
        conditions.append(
            mk.make(
                "BuildSucceeded",
                "True",
                "Succeeded",
                f"revision {facts.revision} built; variant {build.selected or 'default'} selected",
            )
        )
    elif build.state == "Failed":
        conditions.append(mk.make("BuildSucceeded", "False", "BuildFailed", build.error or ""))
    else:
        conditions.append(
            mk.make("BuildSucceeded", "Unknown", "BuildRunning", f"Job {facts.job_name} is running")
        )
    # kstatus' abnormal-true conditions, so GitOps tools read the same truth.
    conditions.append(
        mk.make(
            "Reconciling",
            "True" if progressing else "False",
            reason,
            message if progressing else "",
        )
    )
    conditions.append(
        mk.make(
            "Stalled",
            "True" if stalled else "False",
            reason if stalled else "AsExpected",
            message if stalled else "",
        )
    )
    if facts.monitoring is not None:
        conditions.append(mk.make("Monitoring", *facts.monitoring))
    if spec.rollout.analysis is not None and facts.canary is not None:
        conditions.append(mk.make("CanaryAnalysis", *_analysis_condition(facts.canary)))
    if spec.autoscaled:
        conditions.append(mk.make(report.CONDITION, *report.condition(prior.autoscaling)))
    if rollout.gateway_routed(spec) and facts.traffic is not None:
        said = facts.traffic
        conditions.append(mk.make(traffic.CONDITION, said.status, said.reason, said.message))
    if facts.conflicts:
        conditions.append(mk.make(NAME_CONFLICT, "True", NAME_CONFLICT, message))
    elif any(c.type == NAME_CONFLICT for c in prior.conditions):
        conditions.append(mk.make(NAME_CONFLICT, "False", "Resolved", "every child name is ours"))
    for type_, note in _unimplemented(spec):
        conditions.append(mk.make(type_, "False", NOT_IMPLEMENTED, note))

    decision = prior.last_decision
    if facts.decision is not None:
        decision = facts.decision
    elif facts.replaced is not None and selected is not None:
        decision = api.Decision(
            action="Replaced",
            reason=f"revision {selected} replaced {facts.replaced}: all {desired} replicas ready, "
            f"the Service moved to it; {facts.replaced} drains, then sleeps at zero replicas",
            at=now,
        )
    if selected is not None and (phase == "Ready" or facts.replaced is not None):
        stable = current if selected == facts.revision else api.RevisionRef(revision=selected)
    elif selected is not None and stable is not None and stable.revision != selected:
        # The Service selects a revision that served before (e.g. after a restart mid-switch).
        stable = api.RevisionRef(revision=selected)
    history = _history(prior, facts, selected, phase, now)

    return api.ModelDeploymentStatus(
        phase=phase,
        observed_generation=generation,
        conditions=conditions,
        revisions=api.Revisions(
            current=current,
            stable=stable,
            starting=facts.starting_clock,
            failed=facts.failed,
            retired=list(facts.retired),
        ),
        canary=facts.canary,
        build=build,
        last_decision=decision,
        history=history,
        replicas=facts.replicas,
        ready_replicas=facts.ready_replicas,
        selector=facts.selector,
        url=facts.url,
        gateway_url=facts.gateway_url,
        monitoring=facts.monitoring_status,
        feedback_key_secret=facts.feedback_key_secret,
        autoscaling=prior.autoscaling if spec.autoscaled else None,
    )


def _conflict_message(conflicts: Sequence[str]) -> str:
    return (
        f"{', '.join(conflicts)} exists and is not owned by this ModelDeployment: it is left "
        "alone (neither adopted nor overwritten); delete or rename it, or rename the model"
    )


def _traffic_note(canary: api.Canary) -> str:
    if canary.traffic_weight is None:
        return ""
    return f"; the routes give it {canary.traffic_weight}% of requests now"


def _scaling_up(
    spec: api.ModelDeploymentSpec,
    autoscaling: api.AutoscalingStatus | None,
    ready: int,
    now: str,
) -> api.AutoscalingStatus | None:
    """The autoscaler's last move, when it was up and its new pods are still starting: none of
    the pods from before is missing, and the progress deadline since the move has not passed
    (pods that never start are a loss after all)."""
    if not spec.autoscaled or autoscaling is None:
        return None
    before, at = autoscaling.scaled_from, autoscaling.last_scale_time
    if before is None or at is None or autoscaling.desired_replicas <= before or ready < before:
        return None
    elapsed = (parse_time(now) - parse_time(at)).total_seconds()
    return autoscaling if elapsed <= spec.rollout.progress_deadline_seconds else None


def transition_events(
    prior: api.ModelDeploymentStatus, new: api.ModelDeploymentStatus
) -> list[EventSpec]:
    """Events for every transition between two statuses (none when nothing flipped)."""
    events: list[EventSpec] = []
    old_conds = {c.type: c for c in prior.conditions}
    # Each phase is told by the condition that explains it.
    warning = new.phase in ("Degraded", "Failed")
    telling = "Degraded" if warning else ("Ready" if new.phase == "Ready" else "Progressing")
    told = next((c for c in new.conditions if c.type == telling), None)
    if new.phase != prior.phase and told is not None:
        events.append(
            EventSpec("Warning" if warning else "Normal", new.phase or "Unknown", told.message)
        )
    for cond in new.conditions:
        old = old_conds.get(cond.type)
        if cond.type != "BuildSucceeded" or (old is not None and old.status == cond.status):
            continue
        if cond.status == "True":
            events.append(EventSpec("Normal", "BuildSucceeded", cond.message))
        elif cond.status == "False":
            refused = cond.reason == HOST_PATH_REFUSED
            events.append(
                EventSpec("Warning", cond.reason if refused else "BuildFailed", cond.message)
            )
        elif new.phase != prior.phase and new.phase == "Building":
            continue  # the phase event already says the build started
        else:
            events.append(EventSpec("Normal", "BuildStarted", cond.message))
    decision = new.last_decision
    if decision is not None and decision != prior.last_decision:
        kind: Literal["Normal", "Warning"] = (
            "Warning" if decision.action == "RolledBack" else "Normal"
        )
        events.append(EventSpec(kind, decision.action, decision.reason))
    conflict = next((c for c in new.conditions if c.type == NAME_CONFLICT), None)
    before = old_conds.get(NAME_CONFLICT)
    told_before = (
        before is not None
        and conflict is not None
        and before.status == "True"
        and before.message == conflict.message
    )
    if conflict is not None and conflict.status == "True" and not told_before:
        events.append(EventSpec("Warning", NAME_CONFLICT, conflict.message))
    verdict = _verdict_event(old_conds.get("CanaryAnalysis"), new.conditions)
    if verdict is not None:
        events.append(verdict)
    events += _autoscaling_events(prior, new)
    return events


def _autoscaling_events(
    prior: api.ModelDeploymentStatus, new: api.ModelDeploymentStatus
) -> list[EventSpec]:
    """An Event per scale, with the figures behind it, and when the metrics go or come back."""
    events: list[EventSpec] = []
    was, now = prior.autoscaling, new.autoscaling
    if now is None:
        return events
    if now.last_scale_time is not None and now.last_scale_time != (
        was.last_scale_time if was is not None else None
    ):
        before = was.desired_replicas if was is not None else None
        up = before is None or now.desired_replicas > before
        events.append(
            EventSpec("Normal", "ScaledUp" if up else "ScaledDown", now.last_scale_reason or "")
        )
    held_before = was is not None and was.held_for_missing_data
    if now.held_for_missing_data and not held_before:
        events.append(EventSpec("Warning", "MetricsUnavailable", now.reason))
    elif held_before and not now.held_for_missing_data:
        events.append(EventSpec("Normal", "MetricsAvailable", f"autoscaling resumed: {now.reason}"))
    return events


# The CanaryAnalysis reasons that are verdicts, and the Event each becomes when it changes.
VERDICT_EVENTS: dict[str, tuple[Literal["Normal", "Warning"], str]] = {
    "Passing": ("Normal", "AnalysisPassing"),
    "Failing": ("Warning", "AnalysisFailing"),
    "Inconclusive": ("Normal", "AnalysisInconclusive"),
    "HeldByAnalysis": ("Warning", "AnalysisHeld"),
}


def _verdict_event(
    old: api.Condition | None, conditions: Sequence[api.Condition]
) -> EventSpec | None:
    """An Event when the canary analysis' verdict changes (not at each interval that repeats
    it: the condition carries the latest figures)."""
    new = next((c for c in conditions if c.type == "CanaryAnalysis"), None)
    if new is None or new.reason not in VERDICT_EVENTS:
        return None
    if old is not None and old.reason == new.reason:
        return None
    kind, reason = VERDICT_EVENTS[new.reason]
    return EventSpec(kind, reason, new.message)


def _analysis_condition(canary: api.Canary) -> tuple[api.ConditionStatus, str, str]:
    """The last analysis interval in words: which checks pass, fail or cannot tell, and why."""
    if not canary.analysis:
        return "Unknown", "Measuring", "the first analysis interval of this step is running"
    failing = [c for c in canary.analysis if c.verdict == "Fail"]
    unsure = [c for c in canary.analysis if c.verdict == "Inconclusive"]
    said = "; ".join(f"{c.name}: {c.reason}" for c in failing + unsure)
    if canary.held_by_analysis:
        return "False", "HeldByAnalysis", f"held until the promote or abort annotation: {said}"
    if failing:
        return "False", "Failing", f"{canary.failures} failed interval(s): {said}"
    if unsure:
        return (
            "False",
            "Inconclusive",
            f"{canary.inconclusive} inconclusive interval(s) in a row, holding the step: {said}",
        )
    return "True", "Passing", "; ".join(f"{c.name}: {c.reason}" for c in canary.analysis)


HISTORY_LENGTH = 10


def _history(
    prior: api.ModelDeploymentStatus,
    facts: Facts,
    selected: str | None,
    phase: api.Phase,
    now: str,
) -> list[api.HistoryEntry]:
    """Which revision served when: a revision enters when it takes all traffic, and leaves
    (Replaced, Promoted away, RolledBack) with the time; bounded to the newest entries."""
    entries = list(prior.history)
    open_ = next((e for e in reversed(entries) if e.until is None), None)
    if facts.replaced is not None and selected is not None:
        promoted = facts.decision is not None and facts.decision.action == "Promoted"
        if open_ is not None:
            entries[entries.index(open_)] = open_.model_copy(
                update={"until": now, "outcome": "Replaced"}
            )
        outcome = "Promoted" if promoted else "Serving"
        entries.append(api.HistoryEntry(revision=selected, since=now, outcome=outcome))
    elif facts.decision is not None and facts.decision.action == "RolledBack":
        canary_since = prior.canary.step_started_at if prior.canary else None
        entries.append(
            api.HistoryEntry(
                revision=facts.revision,
                since=canary_since or now,
                until=now,
                outcome="RolledBack",
            )
        )
    elif open_ is None and selected is not None and phase == "Ready":
        entries.append(api.HistoryEntry(revision=selected, since=now, outcome="Serving"))
    return entries[-HISTORY_LENGTH:]


def retirement_events(
    slept: tuple[api.RetiredRevision, ...], deleted: tuple[tuple[str, str], ...], drain: int
) -> list[EventSpec]:
    """Events for replaced revisions scaled to zero or deleted by a reconcile."""
    events = [
        EventSpec(
            "Normal",
            "RevisionScaledToZero",
            f"revision {r.revision} (Deployment {r.deployment}) scaled to zero after a {drain} s "
            "drain; kept, so going back to it needs no rebuild",
        )
        for r in slept
    ]
    events += [
        EventSpec("Normal", "RevisionDeleted", f"{kind} {name} deleted: no longer kept")
        for kind, name in deleted
        if kind == "Deployment"
    ]
    return events


def reconcile_error(
    prior: api.ModelDeploymentStatus, generation: int, error: str, now: str
) -> api.ModelDeploymentStatus:
    """The status after a reconcile that failed (and is retried with backoff): Degraded and
    Reconciling say so, and the phase agrees with them. Ready keeps what was last known: the
    error says nothing about whether the model answers."""
    mk = _Conditions({c.type: c for c in prior.conditions}, generation, now)
    message = f"reconcile failed (retried with backoff): {error}"[:2000]
    ready = next((c for c in prior.conditions if c.type == "Ready"), None)
    answers = ready is not None and ready.status == "True"
    replaced = {
        "Degraded": mk.make("Degraded", "True", "ReconcileError", message),
        "Reconciling": mk.make("Reconciling", "True", "ReconcileError", message),
    }
    conditions = [replaced.pop(c.type, c) for c in prior.conditions] + list(replaced.values())
    return prior.model_copy(
        update={
            "conditions": conditions,
            "phase": "Degraded" if answers else "Failed",
            "observed_generation": generation,
        }
    )
