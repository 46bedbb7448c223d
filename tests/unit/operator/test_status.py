"""Status transitions: phases, conditions, lastTransitionTime and events, as a table."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from modelship import api, monitoring, status
from modelship.builds import BuildSummary
from modelship.scaling import report

from .conftest import make_md

MD_SPEC = {"model": {"uri": "s3://models/fraud/model.onnx"}}
MD = make_md(MD_SPEC)
REV = MD.spec.revision()
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
OK = BuildSummary(
    ok=True, selected="int8", variants=(api.BuildVariant(name="int8", sha256="d1g", selected=True),)
)

BASE = status.Facts(
    revision=REV,
    job_name=f"fraud-build-{REV}",
    artifact=f"s3://a/ml/fraud/{REV}/",
    build_state="Running",
    summary=None,
    build_message="",
    log_tail=None,
    serving_revision=None,
    rolled_out=False,
    replicas=0,
    ready_replicas=0,
    selector="app.kubernetes.io/component=server,app.kubernetes.io/instance=fraud",
    url="http://fraud.ml.svc:8080/v2/models/fraud",
)


def facts(**changes: Any) -> status.Facts:
    return dataclasses.replace(BASE, **changes)


def built(**changes: Any) -> status.Facts:
    """Facts of a revision whose build succeeded."""
    return facts(build_state="Succeeded", summary=OK, **changes)


def starting(old_ready: int) -> status.Facts:
    """Built revision REV starting (1 of 3 pods ready) while revision "old" serves."""
    return built(
        serving_revision="old",
        ready_replicas=old_ready,
        replicas=3,
        starting=status.Starting(ready_replicas=1, wanted=3),
    )


def cond(st: api.ModelDeploymentStatus, type_: str) -> api.Condition:
    return next(c for c in st.conditions if c.type == type_)


STABLE_OTHER = api.ModelDeploymentStatus(
    revisions=api.Revisions(stable=api.RevisionRef(revision="old"))
)
STABLE_SAME = api.ModelDeploymentStatus(
    phase="Ready", revisions=api.Revisions(stable=api.RevisionRef(revision=REV))
)


AUTOSCALED = {
    "model": {"uri": "s3://m/model.onnx"},
    "scaling": {"targets": {"concurrencyPerReplica": 1}},
}


FAILED_BY_DEADLINE = api.FailedRevision(
    revision=REV,
    generation=3,
    reason="ProgressDeadlineExceeded",
    message=f"revision {REV} not ready within 600s (0/1 replicas ready): container server: "
    "CrashLoopBackOff, last exit OOMKilled (code 137)",
    at=T0,
)


# Each row: prior status, facts -> phase, then the status of Ready, Progressing (= Reconciling),
# Degraded, Stalled and BuildSucceeded. kstatus reads Stalled=True as Failed, Reconciling=True as
# InProgress, and neither as Current.
@pytest.mark.parametrize(
    ("prior", "f", "expected"),
    [
        (api.ModelDeploymentStatus(), facts(), ("Building", "F", "T", "F", "F", "Unknown")),
        (
            api.ModelDeploymentStatus(),
            facts(build_state="Failed", summary=BuildSummary(ok=False, error="404 on s3://x")),
            ("Failed", "F", "F", "T", "T", "F"),
        ),
        (
            STABLE_OTHER,
            facts(build_state="Failed", serving_revision="old", ready_replicas=2, replicas=2),
            # The old revision still answers: Ready stays True; the spec is stalled.
            ("Degraded", "T", "F", "T", "T", "F"),
        ),
        (
            STABLE_OTHER,
            facts(build_state="Running", serving_revision="old", ready_replicas=2),
            ("Building", "T", "T", "F", "F", "Unknown"),
        ),
        # A new revision starts beside the old one: Ready follows the old one's ready pods.
        (STABLE_OTHER, starting(old_ready=3), ("Deploying", "T", "T", "F", "F", "T")),
        (STABLE_OTHER, starting(old_ready=0), ("Deploying", "F", "T", "F", "F", "T")),
        # ... and misses its deadline: stalled and degraded, the old one still answers.
        (
            STABLE_OTHER,
            built(
                serving_revision="old",
                ready_replicas=3,
                replicas=3,
                failed=FAILED_BY_DEADLINE,
            ),
            ("Degraded", "T", "F", "T", "T", "T"),
        ),
        # A brand-new model whose first revision misses its deadline: nothing answers.
        (
            api.ModelDeploymentStatus(),
            built(
                serving_revision=REV,
                failed=FAILED_BY_DEADLINE,
            ),
            ("Failed", "F", "F", "T", "T", "T"),
        ),
        (
            api.ModelDeploymentStatus(),
            built(serving_revision=REV),
            ("Deploying", "F", "T", "F", "F", "T"),
        ),
        (
            api.ModelDeploymentStatus(),
            built(
                serving_revision=REV,
                rolled_out=True,
                replicas=1,
                ready_replicas=1,
            ),
            ("Ready", "T", "F", "F", "F", "T"),
        ),
        # More ready pods than the one wanted: a scale-down draining, nothing lost (a stable
        # revision that lost pods: test_a_lost_pod_says_the_count).
        (
            STABLE_SAME,
            built(
                serving_revision=REV,
                replicas=3,
                ready_replicas=2,
            ),
            ("Ready", "T", "F", "F", "F", "T"),
        ),
        (
            STABLE_SAME,
            built(serving_revision=REV, replicas=1),
            ("Degraded", "F", "F", "T", "F", "T"),
        ),
    ],
    ids=[
        "building",
        "build-failed",
        "build-failed-stable-serves",
        "building-stable-serves",
        "starting-beside-stable",
        "starting-stable-down",
        "deadline-stable-serves",
        "deadline-nothing-serves",
        "first-revision-starting",
        "ready",
        "draining-after-scale-down",
        "lost-every-pod",
    ],
)
def test_phase_table(
    prior: api.ModelDeploymentStatus,
    f: status.Facts,
    expected: tuple[str, str, str, str, str, str],
) -> None:
    phase, *flags, build = expected
    full = {"T": "True", "F": "False"}
    ready, progressing, degraded, stalled = (full[x] for x in flags)
    new = status.derive_status(MD.spec, 3, prior, f, T0)
    assert new.phase == phase
    assert cond(new, "Ready").status == ready
    assert cond(new, "Progressing").status == progressing
    assert cond(new, "Reconciling").status == progressing
    assert cond(new, "Degraded").status == degraded
    assert cond(new, "Stalled").status == stalled
    assert cond(new, "BuildSucceeded").status == full.get(build, build)
    assert new.observed_generation == 3
    assert new.selector == BASE.selector


def test_a_lost_pod_says_the_count() -> None:
    f = built(serving_revision=REV, replicas=3, ready_replicas=2)
    new = status.derive_status(make_md({**MD_SPEC, "replicas": 3}).spec, 1, STABLE_SAME, f, T0)
    assert cond(new, "Degraded").message == f"revision {REV}: 2/3 replicas ready"
    (event,) = [e for e in status.transition_events(STABLE_SAME, new) if e.reason == "Degraded"]
    assert event.type == "Warning" and "2/3 replicas ready" in event.message


def test_a_lost_pod_says_what_its_pods_report() -> None:
    said = "init container fetch: exited Error (code 1): the store lists sha256 aa… recorded bb…"
    f = built(serving_revision=REV, replicas=3, ready_replicas=2, pods_said=said)
    new = status.derive_status(make_md({**MD_SPEC, "replicas": 3}).spec, 1, STABLE_SAME, f, T0)
    assert cond(new, "Degraded").message == f"revision {REV}: 2/3 replicas ready ({said})"


def test_pods_draining_after_a_scale_down_are_no_loss() -> None:
    f = built(serving_revision=REV, replicas=5, ready_replicas=5)
    new = status.derive_status(make_md({**MD_SPEC, "replicas": 4}).spec, 1, STABLE_SAME, f, T0)
    assert (new.phase, cond(new, "Ready").reason) == ("Ready", "Serving")
    assert cond(new, "Ready").message == (
        f"revision {REV} serves 4/4 replicas (1 more draining after a scale-down)"
    )
    assert cond(new, "Degraded").status == "False"
    events = status.transition_events(STABLE_SAME, new)
    assert [e.reason for e in events if e.reason != "BuildSucceeded"] == []


@pytest.mark.parametrize(
    ("ready", "now", "phase", "reason"),
    [
        pytest.param(2, T1, "Deploying", "ScalingUp", id="new pods starting: progress"),
        pytest.param(1, T1, "Degraded", "ReplicasUnavailable", id="a pod from before lost"),
        pytest.param(
            2, "2026-01-01T00:11:00Z", "Degraded", "ReplicasUnavailable", id="past the deadline"
        ),
    ],
)
def test_pods_the_autoscaler_added_are_progress_not_a_loss(
    ready: int, now: str, phase: str, reason: str
) -> None:
    scaled = api.AutoscalingStatus(
        desired_replicas=4,
        evaluated_at=T0,
        last_scale_time=T0,
        last_scale_reason="2 -> 4: requests/s 9.0/replica > target 5: 2 -> 4",
        scaled_from=2,
    )
    md = report.served(make_md(AUTOSCALED), scaled)
    prior = STABLE_SAME.model_copy(update={"autoscaling": scaled})
    f = built(serving_revision=REV, replicas=4, ready_replicas=ready)
    new = status.derive_status(md.spec, 1, prior, f, now)
    assert (new.phase, cond(new, "Progressing").reason) == (phase, reason)
    assert cond(new, "Ready").status == "True"
    if reason == "ScalingUp":
        assert cond(new, "Progressing").message == (
            f"revision {REV} serves 2/4 replicas: scaled up from 2 at {T0}, 2 starting"
        )
        assert cond(new, "Degraded").status == "False"


def test_a_missed_deadline_names_the_revision_and_what_its_pods_report() -> None:
    f = built(
        serving_revision="old",
        ready_replicas=3,
        replicas=3,
        failed=FAILED_BY_DEADLINE,
    )
    new = status.derive_status(MD.spec, 3, STABLE_OTHER, f, T0)
    stalled = cond(new, "Stalled")
    assert stalled.reason == "ProgressDeadlineExceeded"
    assert f"revision {REV} not ready" in stalled.message and "OOMKilled" in stalled.message
    assert "revision old serves 3/1 replicas" in cond(new, "Degraded").message
    assert new.revisions is not None and new.revisions.failed == FAILED_BY_DEADLINE


@pytest.mark.parametrize(
    ("ready", "phase"), [("True", "Degraded"), ("False", "Failed")], ids=["serving", "not"]
)
def test_a_reconcile_error_leaves_no_contradiction(ready: str, phase: str) -> None:
    prior = api.ModelDeploymentStatus(
        phase="Ready",
        observed_generation=2,
        conditions=[
            api.Condition(type="Ready", status=ready, reason="Serving", last_transition_time=T0),
            api.Condition(
                type="Degraded", status="False", reason="AsExpected", last_transition_time=T0
            ),
            api.Condition(
                type="Reconciling", status="False", reason="Serving", last_transition_time=T0
            ),
        ],
    )
    new = status.reconcile_error(prior, 3, "HTTP 422: spec.template invalid", T1)
    assert new.phase == phase and new.observed_generation == 3
    assert cond(new, "Ready").status == ready  # unknown to the error: kept
    for type_ in ("Degraded", "Reconciling"):
        assert cond(new, type_).status == "True" and cond(new, type_).reason == "ReconcileError"
        assert (
            "HTTP 422" in cond(new, type_).message and cond(new, type_).last_transition_time == T1
        )
    # The same error again writes nothing new.
    assert status.reconcile_error(new, 3, "HTTP 422: spec.template invalid", T1) == new


def test_failed_build_carries_the_cause_and_log_tail() -> None:
    f = facts(
        build_state="Failed",
        summary=BuildSummary(ok=False, error="sha256 mismatch"),
        log_tail="line1\nline2",
    )
    new = status.derive_status(MD.spec, 1, api.ModelDeploymentStatus(), f, T0)
    assert new.build is not None and new.build.error == "sha256 mismatch"
    assert new.build.log_tail == "line1\nline2"
    assert "sha256 mismatch" in cond(new, "Ready").message


def test_ready_records_stable_revision_digest_and_replacement() -> None:
    gone = api.RetiredRevision(revision="old", deployment="fraud-old", since=T0)
    f = built(
        serving_revision=REV,
        rolled_out=True,
        replicas=1,
        ready_replicas=1,
        replaced="old",
        retired=(gone,),
    )
    new = status.derive_status(MD.spec, 1, STABLE_OTHER, f, T0)
    assert new.revisions is not None and new.revisions.stable is not None
    assert new.revisions.stable.revision == REV and new.revisions.stable.digest == "d1g"
    assert new.revisions.retired == [gone]
    assert new.last_decision is not None and new.last_decision.action == "Replaced"
    assert f"revision {REV} replaced old" in new.last_decision.reason
    events = status.transition_events(STABLE_OTHER, new)
    assert any(e.reason == "Replaced" for e in events)
    # The next reconcile, with nothing new, decides nothing new.
    again = status.derive_status(MD.spec, 1, new, dataclasses.replace(f, replaced=None), T1)
    assert again.last_decision == new.last_decision


def test_a_starting_revision_says_what_serves_meanwhile() -> None:
    new = status.derive_status(MD.spec, 1, STABLE_OTHER, starting(old_ready=3), T0)
    progressing = cond(new, "Progressing")
    assert progressing.reason == "RevisionStarting"
    assert f"starting revision {REV}: 1/3 replicas ready" in progressing.message
    assert "revision old serves 3/" in cond(new, "Ready").message
    assert new.revisions is not None and new.revisions.stable == api.RevisionRef(revision="old")


def test_retirement_events() -> None:
    gone = api.RetiredRevision(revision="old", deployment="fraud-old", since=T0)
    events = status.retirement_events((gone,), (("Deployment", "fraud"), ("Service", "x")), 10)
    assert [e.reason for e in events] == ["RevisionScaledToZero", "RevisionDeleted"]
    assert "after a 10 s drain" in events[0].message


def test_transition_time_moves_only_when_status_flips() -> None:
    first = status.derive_status(MD.spec, 1, api.ModelDeploymentStatus(), facts(), T0)
    again = status.derive_status(MD.spec, 1, first, facts(), T1)
    assert again == first  # identical inputs: no write
    done = status.derive_status(MD.spec, 1, first, built(serving_revision=REV), T1)
    assert cond(done, "BuildSucceeded").last_transition_time == T1
    assert cond(done, "Ready").last_transition_time == T0  # still False


def test_unimplemented_features_are_reported() -> None:
    md = make_md(
        {
            "model": {"uri": "s3://m/model.onnx"},
            "runtime": {"type": "triton"},
            "rollout": {"steps": [5, 100], "analysis": {"maxErrorRate": 0.01}},
            "scaling": {"targets": {"p95LatencyMs": 50}},
            "monitoring": {"podMonitor": True},
        }
    )
    new = status.derive_status(md.spec, 1, api.ModelDeploymentStatus(), facts(), T0)
    assert cond(new, "TritonRuntime").reason == status.NOT_IMPLEMENTED
    # The autoscaler is built: before its first evaluation it says it waits for metrics.
    scaling = cond(new, "ScalingActive")
    assert (scaling.status, scaling.reason) == ("Unknown", "AwaitingMetrics")
    assert all(c.type != "Autoscaling" for c in new.conditions)
    # Canary steps themselves are built: steps alone report nothing unimplemented.
    steps_only = make_md({"model": {"uri": "s3://m/model.onnx"}, "rollout": {"steps": [5, 100]}})
    stepped = status.derive_status(steps_only.spec, 1, api.ModelDeploymentStatus(), facts(), T0)
    assert all(c.reason != status.NOT_IMPLEMENTED for c in stepped.conditions)
    plain = status.derive_status(MD.spec, 1, api.ModelDeploymentStatus(), facts(), T0)
    assert all(c.reason != status.NOT_IMPLEMENTED for c in plain.conditions)


def test_events_follow_transitions() -> None:
    empty = api.ModelDeploymentStatus()
    building = status.derive_status(MD.spec, 1, empty, facts(), T0)
    assert [e.reason for e in status.transition_events(empty, building)] == ["Building"]
    assert status.transition_events(building, building) == []
    failed = status.derive_status(
        MD.spec, 1, building, facts(build_state="Failed", build_message="BackoffLimitExceeded"), T1
    )
    events = status.transition_events(building, failed)
    assert [(e.type, e.reason) for e in events] == [
        ("Warning", "Failed"),
        ("Warning", "BuildFailed"),
    ]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (monitoring.Outcome(), None),
        (
            monitoring.Outcome(present={"PodMonitor": "fraud", "PrometheusRule": "fraud"}),
            ("True", "Applied", "PodMonitor fraud, PrometheusRule fraud"),
        ),
        (
            monitoring.Outcome(
                present={"ConfigMap": "fraud-dashboard"}, kinds_not_served=("PodMonitor",)
            ),
            ("False", "CRDsMissing", "PodMonitor (monitoring.coreos.com/v1) not served"),
        ),
        (
            monitoring.Outcome(errors=("PodMonitor fraud: HTTP 403",)),
            ("False", "ApplyFailed", "PodMonitor fraud: HTTP 403"),
        ),
    ],
    ids=["nothing-wanted", "applied", "crds-missing", "forbidden"],
)
def test_monitoring_condition(
    outcome: monitoring.Outcome, expected: tuple[str, str, str] | None
) -> None:
    new = status.derive_status(
        MD.spec,
        1,
        api.ModelDeploymentStatus(),
        facts(monitoring=monitoring.condition(outcome), monitoring_status=outcome.status()),
        T0,
    )
    found = next((c for c in new.conditions if c.type == "Monitoring"), None)
    if expected is None:
        assert found is None and new.monitoring is None
        return
    assert found is not None
    assert (found.status, found.reason) == expected[:2]
    assert expected[2] in found.message
    assert (new.monitoring is not None) == bool(outcome.present)


def analysis(reason: str, message: str) -> api.ModelDeploymentStatus:
    """A status whose CanaryAnalysis condition says `reason`."""
    state: api.ConditionStatus = "True" if reason == "Passing" else "False"
    if reason == "Measuring":
        state = "Unknown"
    condition = api.Condition(
        type="CanaryAnalysis", status=state, reason=reason, message=message, last_transition_time=T0
    )
    return api.ModelDeploymentStatus(conditions=[condition])


def test_an_event_tells_each_change_of_the_analysis_verdict_not_each_interval() -> None:
    sequence = [
        analysis("Measuring", "the first analysis interval of this step is running"),
        analysis("Inconclusive", "1 inconclusive interval(s): maxErrorRate: 3 requests < 20"),
        analysis("Inconclusive", "2 inconclusive interval(s): maxErrorRate: 5 requests < 20"),
        analysis("Failing", "1 failed interval(s): maxP99LatencyMs: p99 180 ms > 100 ms"),
        analysis("Passing", "maxP99LatencyMs: p99 80 ms <= 100 ms (500 requests)"),
        analysis("HeldByAnalysis", "held until the promote or abort annotation: ..."),
    ]
    told = [
        [(e.type, e.reason, e.message) for e in status.transition_events(before, after)]
        for before, after in zip([api.ModelDeploymentStatus(), *sequence], sequence, strict=False)
    ]
    assert told == [
        [],
        [("Normal", "AnalysisInconclusive", sequence[1].conditions[0].message)],
        [],  # the same verdict again: the condition has the new figures, no new Event
        [("Warning", "AnalysisFailing", sequence[3].conditions[0].message)],
        [("Normal", "AnalysisPassing", sequence[4].conditions[0].message)],
        [("Warning", "AnalysisHeld", sequence[5].conditions[0].message)],
    ]


def _autoscaling(desired: int, *, held: bool = False, scaled_at: str | None = None) -> Any:
    return api.AutoscalingStatus(
        desired_replicas=desired,
        evaluated_at=T0,
        reason=f"hold at {desired}: no data" if held else f"concurrency: -> {desired}",
        held_for_missing_data=held,
        last_scale_time=scaled_at,
        last_scale_reason=f"1 -> {desired}: concurrency 3.0/replica > target 1"
        if scaled_at
        else None,
    )


@pytest.mark.parametrize(
    ("was", "now", "expected"),
    [
        (None, _autoscaling(1), []),
        (_autoscaling(1), _autoscaling(3, scaled_at=T1), [("Normal", "ScaledUp")]),
        (_autoscaling(3, scaled_at=T0), _autoscaling(1, scaled_at=T1), [("Normal", "ScaledDown")]),
        (_autoscaling(3, scaled_at=T0), _autoscaling(3, scaled_at=T0), []),
        (_autoscaling(3), _autoscaling(3, held=True), [("Warning", "MetricsUnavailable")]),
        (_autoscaling(3, held=True), _autoscaling(3, held=True), []),
        (_autoscaling(3, held=True), _autoscaling(3), [("Normal", "MetricsAvailable")]),
    ],
)
def test_autoscaling_events_and_condition(
    was: Any, now: Any, expected: list[tuple[str, str]]
) -> None:
    spec = make_md(AUTOSCALED).spec
    before = status.derive_status(spec, 1, api.ModelDeploymentStatus(autoscaling=was), facts(), T0)
    after = status.derive_status(
        spec, 1, before.model_copy(update={"autoscaling": now}), facts(), T1
    )
    assert after.autoscaling == now
    events = status.transition_events(before, after)
    assert [(e.type, e.reason) for e in events if e.reason not in ("Building",)] == expected
    for event in events:
        if event.reason.startswith("Scaled"):
            assert "target" in event.message  # the figures behind the scale
    scaling = cond(after, "ScalingActive")
    if now.held_for_missing_data:
        assert (scaling.status, scaling.reason) == ("False", "MetricsUnavailable")
        assert "no data" in scaling.message
    else:
        assert (scaling.status, scaling.reason) == ("True", "MetricsAvailable")


def test_without_targets_there_is_no_autoscaling_status() -> None:
    prior = api.ModelDeploymentStatus(autoscaling=_autoscaling(3))
    new = status.derive_status(MD.spec, 1, prior, facts(), T0)
    assert new.autoscaling is None
    assert all(c.type != "ScalingActive" for c in new.conditions)


@pytest.mark.parametrize(
    ("serving", "phase"), [("old", "Degraded"), (None, "Failed")], ids=["serving", "not"]
)
def test_a_name_held_by_another_owner_stalls_with_name_conflict(
    serving: str | None, phase: str
) -> None:
    held = "Deployment ml/fraud-abc"
    f = built(serving_revision=serving, ready_replicas=3 if serving else 0, conflicts=(held,))
    new = status.derive_status(MD.spec, 3, STABLE_OTHER, f, T0)
    assert new.phase == phase
    conflict, stalled = cond(new, "NameConflict"), cond(new, "Stalled")
    assert (conflict.status, stalled.status, stalled.reason) == ("True", "True", "NameConflict")
    assert held in conflict.message and "neither adopted nor overwritten" in conflict.message
    events = status.transition_events(STABLE_OTHER, new)
    assert [e.reason for e in events if e.type == "Warning"].count("NameConflict") == 1
    # Told once: the same conflict again posts no second Event.
    again = status.derive_status(MD.spec, 3, new, f, T0)
    assert "NameConflict" not in [e.reason for e in status.transition_events(new, again)]
    # Gone: the condition says so.
    resolved = status.derive_status(MD.spec, 3, new, built(serving_revision=serving), T0)
    assert cond(resolved, "NameConflict").status == "False"
