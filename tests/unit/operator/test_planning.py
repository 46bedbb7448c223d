"""Planning: which children to apply, scale and delete, for each observed situation."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from modelship import api, builds, drift, naming, planning, render
from modelship.builds import ObservedJob
from modelship.planning import Observed, ObservedChild
from modelship.revisions import ObservedDeployment, Serving
from modelship.settings import OperatorSettings
from modelship.timestamps import format_time

from .conftest import make_md

MD = make_md()
REV = MD.spec.revision()


def job(
    revision: str, state: builds.BuildState, created: str = "2026-01-01T00:00:00Z"
) -> ObservedJob:
    return ObservedJob(
        name=f"fraud-build-{revision}", revision=revision, state=state, created=created
    )


NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
OLD = make_md({"model": {"uri": "s3://models/fraud/v1.onnx"}})
OLD_REV = OLD.spec.revision()
# A model whose key Secret was made: what every reconcile after the first one sees.
AT_REST = api.ModelDeploymentStatus(feedbackKeySecret="fraud-feedback-key")


def deployment(
    md: api.ModelDeployment,
    revision: str,
    settings: OperatorSettings,
    *,
    replicas: int = 1,
    ready: int | None = None,
    legacy: bool = False,
) -> ObservedDeployment:
    """A revision's Deployment as the apiserver returns it, with `ready` pods ready."""
    body = render.render_deployment(
        md, naming.RevisionIdentity.of(md, revision), settings, replicas, digest=None
    )
    if legacy:
        # As operators before per-revision Deployments made it: named like the model, its
        # selector without the revision.
        body["metadata"]["name"] = naming.legacy_deployment_name(md.name)
        body["spec"]["selector"]["matchLabels"] = naming.server_selector(md.name)
    ready = replicas if ready is None else ready
    full = {
        **body,
        "metadata": {**body["metadata"], "generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": ready,
            "updatedReplicas": ready,
            "readyReplicas": ready,
        },
    }
    return ObservedDeployment.from_body(full)


def service(revision: str | None) -> dict[str, Any]:
    """The model's Service selecting a revision (None: the legacy selector of every pod)."""
    selector = (
        naming.server_selector("fraud")
        if revision is None
        else naming.RevisionIdentity.of(MD, revision).selector
    )
    svc = render.render_service(MD, selector, revision)
    svc["spec"]["clusterIP"] = "10.96.0.10"  # a field the apiserver adds
    return svc


def own_service(md: api.ModelDeployment, revision: str) -> dict[str, Any]:
    return render.render_revision_service(naming.RevisionIdentity.of(md, revision))


def retired(
    revision: str, since: datetime.datetime, name: str | None = None
) -> api.RetiredRevision:
    return api.RetiredRevision(
        revision=revision,
        deployment=name or naming.revision_name("fraud", revision),
        since=format_time(since),
    )


def remembering(*entries: api.RetiredRevision) -> api.ModelDeploymentStatus:
    return AT_REST.model_copy(update={"revisions": api.Revisions(retired=list(entries))})


def plan_for(
    observed: Observed,
    settings: OperatorSettings,
    md: api.ModelDeployment = MD,
    prior: api.ModelDeploymentStatus = AT_REST,
    now: datetime.datetime = NOW,
) -> planning.Plan:
    return planning.plan(md, observed, settings, prior, now)


def kinds(plan: planning.Plan) -> list[str]:
    return [f"{obj['kind']}/{obj['metadata']['name']}" for obj in plan.apply + plan.revisions.apply]


def serving_old(settings: OperatorSettings, **kwargs: Any) -> tuple[ObservedDeployment, ...]:
    return (deployment(OLD, OLD_REV, settings, **kwargs),)


def test_nothing_exists_creates_the_build_job_only(settings: OperatorSettings) -> None:
    plan = plan_for(Observed(), settings)
    assert kinds(plan) == [f"Job/fraud-build-{REV}"]
    assert plan.build_created and plan.revisions.stable is None


def test_running_build_changes_nothing(settings: OperatorSettings) -> None:
    plan = plan_for(Observed(jobs=(job(REV, "Running"),)), settings)
    assert plan.writes == 0


def test_first_revision_gets_its_deployment_its_service_and_the_model_service(
    settings: OperatorSettings,
) -> None:
    plan = plan_for(Observed(jobs=(job(REV, "Succeeded"),)), settings)
    assert kinds(plan) == [f"Deployment/fraud-{REV}", f"Service/fraud-{REV}", "Service/fraud"]
    # Nothing else serves: the model's Service selects the first revision at once.
    assert plan.revisions.apply[2]["spec"]["selector"][naming.REVISION_LABEL] == REV
    assert plan.revisions.stable == REV and plan.revisions.replaced is None


def test_converged_state_is_a_no_op(settings: OperatorSettings) -> None:
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        serving=Serving(
            deployments=(deployment(MD, REV, settings),),
            service=service(REV),
            revision_services=(own_service(MD, REV),),
        ),
    )
    plan = plan_for(observed, settings)
    assert (
        plan.writes == 0 and plan.revisions.requeue_after is None and plan.revisions.retired == ()
    )


def test_drifted_deployment_is_reapplied(settings: OperatorSettings) -> None:
    dep = deployment(MD, REV, settings)
    dep.body["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:1"
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        serving=Serving(
            deployments=(dep,), service=service(REV), revision_services=(own_service(MD, REV),)
        ),
    )
    assert kinds(plan_for(observed, settings)) == [f"Deployment/fraud-{REV}"]


def test_serving_revision_follows_the_wanted_size_while_the_new_one_builds(
    settings: OperatorSettings,
) -> None:
    md = make_md({"model": {"uri": "s3://models/fraud/model.onnx"}, "replicas": 4})
    observed = Observed(
        jobs=(job(OLD_REV, "Succeeded"), job(REV, "Running", "2026-01-02T00:00:00Z")),
        serving=Serving(
            deployments=serving_old(settings),
            service=service(OLD_REV),
            revision_services=(own_service(OLD, OLD_REV),),
        ),
    )
    plan = plan_for(observed, settings, md=md)
    assert plan.apply == () and plan.revisions.scale == ((f"fraud-{OLD_REV}", 4),)
    assert plan.revisions.stable == OLD_REV and plan.delete_jobs == ()


THREE = make_md({"model": {"uri": "s3://models/fraud/model.onnx"}, "replicas": 3})


def starting_beside_old(settings: OperatorSettings, ready: int) -> planning.Plan:
    """Plan for a new revision at 3 replicas, `ready` of them ready, while the old one serves."""
    observed = Observed(
        jobs=(job(OLD_REV, "Succeeded"), job(REV, "Succeeded")),
        serving=Serving(
            deployments=(
                *serving_old(settings, replicas=3),
                deployment(THREE, REV, settings, replicas=3, ready=ready),
            ),
            service=service(OLD_REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(THREE, REV)),
        ),
    )
    return plan_for(observed, settings, md=THREE)


def test_new_revision_starts_beside_the_serving_one_and_the_service_stays(
    settings: OperatorSettings,
) -> None:
    plan = starting_beside_old(settings, ready=2)
    assert plan.writes == 0
    assert (
        plan.revisions.stable == OLD_REV
        and plan.revisions.replaced is None
        and plan.revisions.retired == ()
    )


def test_service_moves_only_when_every_pod_of_the_new_revision_is_ready(
    settings: OperatorSettings,
) -> None:
    plan = starting_beside_old(settings, ready=3)
    assert kinds(plan) == ["Service/fraud"]
    assert plan.revisions.apply[0]["spec"]["selector"][naming.REVISION_LABEL] == REV
    assert plan.revisions.stable == REV and plan.revisions.replaced == OLD_REV
    # The replaced revision keeps its pods through the drain, and the operator comes back then.
    assert plan.revisions.scale == () and plan.revisions.retired == (retired(OLD_REV, NOW),)
    assert plan.revisions.requeue_after == settings.drain_seconds


CANARY = make_md(
    {
        "model": {"uri": "s3://models/fraud/model.onnx"},
        "replicas": 4,
        "rollout": {"steps": [25, 50, 100], "interval": "10s"},
    }
)


def canary_plan(
    settings: OperatorSettings,
    *,
    canary_ready: int,
    stable_replicas: int = 4,
    before: api.Canary | None = None,
    annotations: dict[str, str] | None = None,
) -> planning.Plan:
    spanning = render.render_service(CANARY, naming.server_selector("fraud"), OLD_REV)
    """A canary of REV (1 pod wanted at 25%) beside OLD_REV serving at `stable_replicas`."""
    md = CANARY.model_copy(update={"annotations": annotations or {}})
    observed = Observed(
        jobs=(job(OLD_REV, "Succeeded"), job(REV, "Succeeded")),
        serving=Serving(
            deployments=(
                *serving_old(settings, replicas=stable_replicas),
                deployment(md, REV, settings, replicas=1, ready=canary_ready),
            ),
            service=spanning if before is not None else service(OLD_REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(md, REV)),
        ),
    )
    prior = AT_REST.model_copy(
        update={
            "canary": before,
            "revisions": api.Revisions(stable=api.RevisionRef(revision=OLD_REV)),
        }
    )
    return plan_for(observed, settings, md=md, prior=prior)


def test_a_canary_step_spans_the_service_over_both_revisions(settings: OperatorSettings) -> None:
    plan = canary_plan(settings, canary_ready=1)
    (svc,) = plan.revisions.apply
    # Every serving pod of the model, and the stable revision named for the next reconcile.
    assert svc["spec"]["selector"] == naming.server_selector("fraud")
    assert svc["metadata"]["annotations"] == {naming.STABLE_ANNOTATION: OLD_REV}
    # The canary pod is ready, so the stable gives one up.
    assert plan.revisions.scale == ((f"fraud-{OLD_REV}", 3),)
    canary = plan.revisions.canary
    assert canary is not None and (canary.step, canary.weight, canary.canary_replicas) == (0, 25, 1)
    assert plan.revisions.stable == OLD_REV and plan.revisions.replaced is None


def test_abort_by_annotation_rolls_back_and_remembers_the_revision(
    settings: OperatorSettings,
) -> None:
    before = api.Canary(
        revision=REV,
        step=0,
        weight=25,
        step_started_at=format_time(NOW),
        canary_replicas=1,
        stable_replicas=3,
    )
    plan = canary_plan(
        settings,
        canary_ready=1,
        stable_replicas=3,
        before=before,
        annotations={"modelship.io/rollout-action": "abort"},
    )
    assert plan.clear_action and plan.action_error is None
    failed = plan.revisions.failed
    assert failed is not None and failed.reason == "RolledBack" and failed.revision == REV
    assert plan.revisions.decision is not None and plan.revisions.decision.action == "RolledBack"
    # Traffic back to the stable alone, stable back to full size, the canary to zero.
    kinds_ = {f"{o['kind']}/{o['metadata']['name']}": o for o in plan.revisions.apply}
    assert kinds_["Service/fraud"]["spec"]["selector"][naming.REVISION_LABEL] == OLD_REV
    assert kinds_[f"Deployment/fraud-{REV}"]["spec"]["replicas"] == 0
    assert plan.revisions.scale == ((f"fraud-{OLD_REV}", 4),)
    assert plan.revisions.canary is None


def test_an_unknown_action_is_refused_and_removed(settings: OperatorSettings) -> None:
    plan = canary_plan(settings, canary_ready=1, annotations={"modelship.io/rollout-action": "x"})
    assert plan.clear_action and plan.action_error is not None
    assert plan.revisions.failed is None


@pytest.mark.parametrize(
    ("elapsed", "scaled", "requeue"),
    [(0, False, 10.0), (9, False, 1.0), (10, True, None), (600, True, None)],
)
def test_replaced_revision_sleeps_at_zero_after_the_drain(
    elapsed: int, scaled: bool, requeue: float | None
) -> None:
    settings = OperatorSettings(drain_seconds=10)
    observed = Observed(
        jobs=(job(OLD_REV, "Succeeded"), job(REV, "Succeeded")),
        serving=Serving(
            deployments=(*serving_old(settings), deployment(MD, REV, settings)),
            service=service(REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(MD, REV)),
        ),
    )
    prior = remembering(retired(OLD_REV, NOW))
    plan = plan_for(observed, settings, prior=prior, now=NOW + datetime.timedelta(seconds=elapsed))
    assert plan.revisions.scale == (((f"fraud-{OLD_REV}", 0),) if scaled else ())
    assert plan.revisions.slept == ((retired(OLD_REV, NOW),) if scaled else ())
    assert plan.revisions.requeue_after == requeue
    assert plan.revisions.retired == (retired(OLD_REV, NOW),) and plan.revisions.delete == ()


def test_a_sleeping_revision_costs_no_write(settings: OperatorSettings) -> None:
    observed = Observed(
        jobs=(job(OLD_REV, "Succeeded"), job(REV, "Succeeded")),
        serving=Serving(
            deployments=(*serving_old(settings, replicas=0), deployment(MD, REV, settings)),
            service=service(REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(MD, REV)),
        ),
    )
    earlier = NOW - datetime.timedelta(hours=1)
    plan = plan_for(observed, settings, prior=remembering(retired(OLD_REV, earlier)))
    assert plan.writes == 0 and plan.revisions.requeue_after is None
    # Its build Job stays too: going back needs no rebuild.
    assert plan.revisions.retired == (retired(OLD_REV, earlier),) and plan.delete_jobs == ()


def test_revisions_past_the_kept_ones_are_deleted() -> None:
    settings = OperatorSettings(kept_revisions=1, kept_build_jobs=1)
    older = make_md({"model": {"uri": "s3://models/fraud/v0.onnx"}})
    older_rev = older.spec.revision()
    observed = Observed(
        jobs=(
            job(older_rev, "Succeeded", "2026-01-01T00:00:00Z"),
            job(OLD_REV, "Succeeded", "2026-01-02T00:00:00Z"),
            job(REV, "Succeeded", "2026-01-03T00:00:00Z"),
        ),
        serving=Serving(
            deployments=(
                deployment(older, older_rev, settings, replicas=0),
                *serving_old(settings, replicas=0),
                deployment(MD, REV, settings),
            ),
            service=service(REV),
        ),
    )
    prior = remembering(
        retired(OLD_REV, NOW - datetime.timedelta(minutes=1)),
        retired(older_rev, NOW - datetime.timedelta(minutes=2)),
    )
    plan = plan_for(observed, settings, prior=prior)
    assert plan.revisions.delete == (
        ("Deployment", f"fraud-{older_rev}"),
        ("Service", f"fraud-{older_rev}"),
    )
    assert [r.revision for r in plan.revisions.retired] == [OLD_REV]
    # Its build Job is now ordinary history, bounded by kept_build_jobs (1 here: it stays).
    assert plan.delete_jobs == ()


def test_going_back_to_a_kept_revision_needs_no_build(settings: OperatorSettings) -> None:
    # Spec back at OLD: its Job was cleaned up, its Deployment sleeps at zero.
    md = make_md({"model": {"uri": "s3://models/fraud/v1.onnx"}, "replicas": 2})
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        serving=Serving(
            deployments=(
                *serving_old(settings, replicas=0),
                deployment(MD, REV, settings, replicas=2),
            ),
            service=service(REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(MD, REV)),
        ),
    )
    prior = remembering(retired(OLD_REV, NOW - datetime.timedelta(hours=1)))
    plan = plan_for(observed, settings, md=md, prior=prior)
    assert not plan.build_created
    assert kinds(plan) == [f"Deployment/fraud-{OLD_REV}"]
    assert plan.revisions.apply[0]["spec"]["replicas"] == 2
    # REV keeps serving until OLD is ready again; OLD is no longer retired.
    assert (
        plan.revisions.stable == REV and plan.revisions.retired == () and plan.revisions.scale == ()
    )


def test_legacy_deployment_serves_until_the_revision_deployment_is_ready(
    settings: OperatorSettings,
) -> None:
    legacy = deployment(MD, REV, settings, replicas=3, legacy=True)
    observed = Observed(
        jobs=(job(REV, "Succeeded"),), serving=Serving(deployments=(legacy,), service=service(None))
    )
    plan = plan_for(observed, settings)
    # The per-revision Deployment comes up beside it at the same revision; the Service stays.
    assert kinds(plan) == [f"Deployment/fraud-{REV}", f"Service/fraud-{REV}"]
    assert plan.revisions.stable == REV and plan.revisions.stable_deployment == "fraud"
    assert plan.revisions.scale == (("fraud", 1),)  # the legacy Deployment follows the wanted size


def test_a_legacy_deployment_of_the_revision_means_it_is_built(settings: OperatorSettings) -> None:
    legacy = deployment(MD, REV, settings, legacy=True)
    plan = plan_for(
        Observed(serving=Serving(deployments=(legacy,), service=service(None))), settings
    )
    assert not plan.build_created
    assert kinds(plan) == [f"Deployment/fraud-{REV}", f"Service/fraud-{REV}"]


def test_legacy_deployment_is_deleted_after_the_service_moved_and_drained(
    settings: OperatorSettings,
) -> None:
    legacy = deployment(MD, REV, settings, legacy=True)
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        serving=Serving(
            deployments=(legacy, deployment(MD, REV, settings)),
            service=service(None),
            revision_services=(own_service(MD, REV),),
        ),
    )
    moved = plan_for(observed, settings)
    assert kinds(moved) == ["Service/fraud"] and moved.revisions.replaced == REV
    assert (
        moved.revisions.retired == (retired(REV, NOW, name="fraud"),)
        and moved.revisions.delete == ()
    )
    drained = plan_for(
        dataclasses.replace(
            observed, serving=dataclasses.replace(observed.serving, service=service(REV))
        ),
        settings,
        prior=remembering(*moved.revisions.retired),
        now=NOW + datetime.timedelta(seconds=settings.drain_seconds),
    )
    assert drained.revisions.delete == (("Deployment", "fraud"),) and drained.revisions.scale == ()
    assert drained.revisions.retired == ()


def starting_alone(
    settings: OperatorSettings,
    *,
    started: datetime.timedelta,
    failed: api.FailedRevision | None = None,
    generation: int = 3,
    controller_gave_up: bool = False,
) -> planning.Plan:
    """A brand-new model's first revision at 2 replicas, 0 ready, started `started` ago."""
    md = make_md({"model": {"uri": "s3://models/fraud/model.onnx"}, "replicas": 2})
    md = md.model_copy(update={"generation": generation})
    dep = deployment(md, REV, settings, replicas=0 if failed else 2, ready=0)
    if controller_gave_up:
        dep.body["status"]["conditions"] = [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ]
        dep = ObservedDeployment.from_body(dep.body)
    crashing = {
        "metadata": {"labels": naming.RevisionIdentity.of(md, REV).labels},
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        },
    }
    clock = api.StartingRevision(revision=REV, since=format_time(NOW - started))
    prior = AT_REST.model_copy(
        update={"revisions": api.Revisions(starting=None if failed else clock, failed=failed)}
    )
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        serving=Serving(
            deployments=(dep,), service=service(REV), revision_services=(own_service(md, REV),)
        ),
        pods=(crashing,),
    )
    return plan_for(observed, settings, md=md, prior=prior)


@pytest.mark.parametrize(
    ("started", "gave_up", "fails", "requeue"),
    [
        (datetime.timedelta(seconds=0), False, False, 600.0),
        (datetime.timedelta(seconds=590), False, False, 10.0),
        (datetime.timedelta(seconds=600), False, True, None),
        # The Deployment controller's own deadline counts too.
        (datetime.timedelta(seconds=30), True, True, None),
    ],
    ids=["just-started", "almost", "deadline", "controller-gave-up"],
)
def test_a_revision_not_ready_by_its_deadline_fails_and_sleeps(
    settings: OperatorSettings,
    started: datetime.timedelta,
    gave_up: bool,
    fails: bool,
    requeue: float | None,
) -> None:
    plan = starting_alone(settings, started=started, controller_gave_up=gave_up)
    failed = plan.revisions.failed
    assert (failed is not None) == fails
    assert plan.revisions.requeue_after == requeue
    if failed is None:
        assert plan.revisions.starting is not None and plan.revisions.apply == ()
        return
    assert failed.reason == "ProgressDeadlineExceeded" and failed.generation == 3
    assert f"revision {REV} not ready within 600s (0/2 replicas ready)" in failed.message
    assert "CrashLoopBackOff, last exit OOMKilled (code 137)" in failed.message
    (scaled,) = plan.revisions.apply
    assert scaled["spec"]["replicas"] == 0 and plan.revisions.starting is None


def test_a_failed_revision_stays_asleep_until_the_spec_changes(
    settings: OperatorSettings,
) -> None:
    failed = api.FailedRevision(
        revision=REV, generation=3, reason="ProgressDeadlineExceeded", message="m", at="t"
    )
    same = starting_alone(settings, started=datetime.timedelta(hours=1), failed=failed)
    assert same.writes == 0 and same.revisions.failed == failed
    changed = starting_alone(
        settings, started=datetime.timedelta(hours=1), failed=failed, generation=4
    )
    # A new generation (say, more memory for the same revision... or any edit): a new chance.
    assert changed.revisions.failed is None and changed.revisions.starting is not None
    (woken,) = changed.revisions.apply
    assert woken["spec"]["replicas"] == 2


def test_a_pod_stuck_before_starting_makes_the_key_secret_again(
    settings: OperatorSettings,
) -> None:
    at = format_time(NOW - datetime.timedelta(seconds=30))
    stuck = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at}],
            "containerStatuses": [
                {"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
        },
    }
    plan = plan_for(Observed(pods=(stuck,)), settings)
    (secret,) = plan.create
    assert secret["metadata"]["name"] == "fraud-feedback-key"


def test_failed_build_is_not_retried_by_planning(settings: OperatorSettings) -> None:
    plan = plan_for(Observed(jobs=(job(REV, "Failed"),)), settings)
    assert plan.writes == 0


def test_superseded_running_builds_are_deleted_and_history_is_bounded() -> None:
    settings = OperatorSettings(kept_build_jobs=1)
    jobs = (
        job("a", "Succeeded", "2026-01-01T00:00:00Z"),
        job("b", "Succeeded", "2026-01-02T00:00:00Z"),
        job("c", "Running", "2026-01-03T00:00:00Z"),
        job(REV, "Running", "2026-01-04T00:00:00Z"),
    )
    plan = plan_for(Observed(jobs=jobs), settings)
    assert set(plan.delete_jobs) == {"fraud-build-c", "fraud-build-a"}


WATCHED = make_md(
    {"model": {"uri": "s3://models/fraud/model.onnx"}, "monitoring": {"podMonitor": True}}
)


def pod_monitor(owner: str = "uid-1") -> dict[str, Any]:
    body = render.render_pod_monitor(WATCHED)
    body["metadata"]["ownerReferences"][0]["uid"] = owner
    return body


@pytest.mark.parametrize(
    ("seen", "applied", "outcome"),
    [
        # Wanted and absent: applied, and present if the apply succeeds.
        (ObservedChild("PodMonitor", "fraud"), 1, ({"PodMonitor": "fraud"}, (), ())),
        # Wanted and already as desired: nothing to write.
        (
            ObservedChild("PodMonitor", "fraud", pod_monitor()),
            0,
            ({"PodMonitor": "fraud"}, (), ()),
        ),
        # Someone else's object of that name: left alone, and said.
        (
            ObservedChild("PodMonitor", "fraud", pod_monitor("someone")),
            0,
            ({}, (), ("PodMonitor fraud exists and is not owned by md/fraud",)),
        ),
        # prometheus-operator's CRDs not installed: a condition, not a failure.
        (
            ObservedChild("PodMonitor", "fraud", served=False),
            0,
            ({}, ("PodMonitor",), ()),
        ),
    ],
    ids=["absent", "converged", "not-ours", "crds-missing"],
)
def test_monitoring_children_go_through_planning(
    seen: ObservedChild,
    applied: int,
    outcome: tuple[dict[str, str], tuple[str, ...], tuple[str, ...]],
    settings: OperatorSettings,
) -> None:
    plan = plan_for(Observed(monitoring=(seen,)), settings, md=WATCHED)
    assert len(plan.monitoring.apply) == applied and plan.monitoring.delete == ()
    expected = plan.monitoring.expected
    assert (expected.present, expected.kinds_not_served, expected.errors) == outcome


def test_a_monitoring_child_switched_off_is_deleted_once(settings: OperatorSettings) -> None:
    made = AT_REST.model_copy(update={"monitoring": api.MonitoringStatus(pod_monitor="fraud")})
    assert plan_for(Observed(), settings, prior=made).monitoring.delete == (
        ("PodMonitor", "fraud"),
    )
    assert plan_for(Observed(), settings).monitoring.delete == ()


def test_the_feedback_key_secret_is_created_once(settings: OperatorSettings) -> None:
    first = planning.plan(
        MD, Observed(), settings, api.ModelDeploymentStatus(), NOW, new_key=b"k" * 32
    )
    (secret,) = first.create
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "fraud-feedback-key"
    assert plan_for(Observed(), settings).create == ()


@pytest.mark.parametrize(
    ("actual", "desired", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"l": [{"x": 1, "y": 2}]}, {"l": [{"x": 1}]}, True),
        ({"l": [1, 2]}, {"l": [1]}, False),
        ({"cpu": "1"}, {"cpu": 1}, True),
        ({"flag": 1}, {"flag": True}, False),
        # The apiserver returns no `envFrom` for `envFrom: []` (nor an empty map).
        ({"name": "x"}, {"name": "x", "envFrom": [], "labels": {}}, True),
        ({"name": "x"}, {"name": "x", "envFrom": [{"secretRef": {}}]}, False),
    ],
)
def test_contains(actual: Any, desired: Any, expected: bool) -> None:
    assert drift.contains(actual, desired) is expected


def test_summary_parsing() -> None:
    text = (
        '{"ok": true, "selected": "int8", "sourceSha256": "ab", "variants": ['
        '{"name": "fp32", "sha256": "1"}, {"name": "int8", "sha256": "2", "accuracy": 0.97, '
        '"p50Ms": 0.4, "p99Ms": 0.9, "selected": true}]}'
    )
    summary = builds.parse_summary(text)
    assert summary is not None and summary.ok and summary.digest == "2"
    assert summary.variants[1].p50_ms == 0.4
    assert builds.parse_summary('{"ok": false, "error": "404 from s3"}').error == "404 from s3"  # type: ignore[union-attr]
    assert builds.parse_summary("Traceback ...") is None
    assert builds.parse_summary(None) is None


def test_job_observation() -> None:
    body = {
        "metadata": {"name": "j", "labels": {naming.REVISION_LABEL: "r"}, "creationTimestamp": "t"},
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        },
    }
    seen = ObservedJob.from_body(body)
    assert seen.state == "Failed" and seen.revision == "r"
    assert "BackoffLimitExceeded" in seen.message


def fetch_args(deployment_body: dict[str, Any]) -> list[str]:
    (fetch,) = deployment_body["spec"]["template"]["spec"]["initContainers"]
    return list(fetch["args"])


SHA = "ab" * 32
BUILT = builds.BuildSummary(
    ok=True, selected="fp32", variants=(api.BuildVariant(name="fp32", sha256=SHA, selected=True),)
)


def test_a_new_revision_is_pinned_to_the_digest_its_build_recorded(
    settings: OperatorSettings,
) -> None:
    observed = Observed(jobs=(job(REV, "Succeeded"),))
    plan = planning.plan(MD, observed, settings, AT_REST, NOW, build=BUILT)
    body = plan.revisions.apply[0]
    assert fetch_args(body)[-2:] == ["--model-sha256", SHA]
    assert body["metadata"]["annotations"][naming.DIGEST_ANNOTATION] == SHA
    # A build without a summary (made by an operator before pinning) is served unpinned.
    unpinned = planning.plan(MD, observed, settings, AT_REST, NOW).revisions.apply[0]
    assert "--model-sha256" not in fetch_args(unpinned)


def test_a_kept_revision_keeps_its_pin_once_its_build_is_gone(settings: OperatorSettings) -> None:
    md = make_md({"model": {"uri": "s3://models/fraud/v1.onnx"}, "replicas": 2})
    sleeping = render.render_deployment(
        OLD, naming.RevisionIdentity.of(OLD, OLD_REV), settings, 0, digest=SHA
    )
    observed = Observed(
        serving=Serving(
            deployments=(
                ObservedDeployment.from_body(sleeping),
                deployment(MD, REV, settings, replicas=2),
            ),
            service=service(REV),
            revision_services=(own_service(OLD, OLD_REV), own_service(MD, REV)),
        ),
    )
    prior = remembering(retired(OLD_REV, NOW - datetime.timedelta(hours=1)))
    plan = plan_for(observed, settings, md=md, prior=prior)
    (woken,) = plan.revisions.apply
    assert woken["spec"]["replicas"] == 2
    assert fetch_args(woken)[-2:] == ["--model-sha256", SHA]


def build_pod(build: dict[str, Any] | None, publish: dict[str, Any] | None) -> dict[str, Any]:
    def statuses(name: str, terminated: dict[str, Any] | None) -> list[dict[str, Any]]:
        state = {"terminated": terminated} if terminated else {"waiting": {"reason": "PodInit"}}
        return [{"name": name, "state": state}]

    return {
        "metadata": {"name": "fraud-build-r-x"},
        "status": {
            "initContainerStatuses": statuses("build", build),
            "containerStatuses": statuses("publish", publish),
        },
    }


OK_SUMMARY = '{"ok": true, "selected": "fp32", "variants": [{"name": "fp32", "sha256": "ab"}]}'


@pytest.mark.parametrize(
    ("build", "publish", "ok", "step", "error"),
    [
        pytest.param(None, None, None, None, None, id="still building: nothing to read"),
        pytest.param({"exitCode": 0, "message": OK_SUMMARY}, None, True, "build", None, id="built"),
        pytest.param(
            {"exitCode": 0, "message": OK_SUMMARY},
            {"exitCode": 0},
            True,
            "build",
            None,
            id="built and published",
        ),
        pytest.param(
            {"exitCode": 1, "message": '{"ok": false, "error": "bad pickle"}'},
            None,
            False,
            "build",
            "bad pickle",
            id="the build failed",
        ),
        pytest.param(
            {"exitCode": 0, "message": OK_SUMMARY},
            {"exitCode": 1, "message": "modelship-runtime publish: cannot publish: AccessDenied"},
            False,
            "publish",
            "publishing failed: modelship-runtime publish: cannot publish: AccessDenied",
            id="built, but the store refused it",
        ),
    ],
)
def test_a_build_pod_reports_the_step_that_decided(
    build: dict[str, Any] | None,
    publish: dict[str, Any] | None,
    ok: bool | None,
    step: str | None,
    error: str | None,
) -> None:
    read = builds.read_pod(build_pod(build, publish))
    if ok is None:
        assert read is None
        return
    assert read is not None
    summary, _, failed_step = read
    assert summary is not None and summary.ok is ok and summary.error == error
    assert failed_step == step
    if step == "publish":
        assert summary.digest == "ab"  # what was built is still told
