"""Planning: which children to apply, scale and delete, for each observed situation."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import naming, planning, render
from modelship.planning import Observed, ObservedDeployment, ObservedJob
from modelship.settings import OperatorSettings

from .conftest import make_md

MD = make_md()
REV = MD.spec.revision()


def job(
    revision: str, state: planning.BuildState, created: str = "2026-01-01T00:00:00Z"
) -> ObservedJob:
    return ObservedJob(
        name=f"fraud-build-{revision}", revision=revision, state=state, created=created
    )


def deployment(body: dict[str, Any], ready: int = 1) -> ObservedDeployment:
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


def kinds(plan: planning.Plan) -> list[str]:
    return [obj["kind"] for obj in plan.apply]


def test_nothing_exists_creates_the_build_job_only(settings: OperatorSettings) -> None:
    plan = planning.plan(MD, Observed(), settings)
    assert kinds(plan) == ["Job"]
    assert plan.build_created and plan.serving_revision is None


def test_running_build_changes_nothing(settings: OperatorSettings) -> None:
    plan = planning.plan(MD, Observed(jobs=(job(REV, "Running"),)), settings)
    assert plan.writes == 0


def test_built_revision_gets_deployment_and_service(settings: OperatorSettings) -> None:
    plan = planning.plan(MD, Observed(jobs=(job(REV, "Succeeded"),)), settings)
    assert kinds(plan) == ["Deployment", "Service"]
    assert plan.serving_revision == REV


def test_converged_state_is_a_no_op(settings: OperatorSettings) -> None:
    dep = deployment(render.render_deployment(MD, REV, settings))
    svc = render.render_service(MD)
    svc["spec"]["clusterIP"] = "10.96.0.10"  # a field the apiserver adds
    plan = planning.plan(
        MD, Observed(jobs=(job(REV, "Succeeded"),), deployment=dep, service=svc), settings
    )
    assert plan.writes == 0


def test_drifted_deployment_is_reapplied(settings: OperatorSettings) -> None:
    body = render.render_deployment(MD, REV, settings)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:1"
    plan = planning.plan(
        MD,
        Observed(
            jobs=(job(REV, "Succeeded"),),
            deployment=deployment(body),
            service=render.render_service(MD),
        ),
        settings,
    )
    assert kinds(plan) == ["Deployment"]


def test_old_revision_keeps_serving_while_the_new_one_builds(settings: OperatorSettings) -> None:
    old = make_md({"model": {"uri": "s3://models/fraud/v1.onnx"}})
    old_rev = old.spec.revision()
    dep = deployment(render.render_deployment(old, old_rev, settings))
    observed = Observed(
        jobs=(job(old_rev, "Succeeded"), job(REV, "Running", "2026-01-02T00:00:00Z")),
        deployment=dep,
        service=render.render_service(MD),
    )
    plan = planning.plan(MD, observed, settings)
    assert plan.writes == 0
    assert plan.serving_revision == old_rev


def test_scaling_an_old_revision_touches_only_replicas(settings: OperatorSettings) -> None:
    old = make_md({"model": {"uri": "s3://models/fraud/v1.onnx"}})
    old_rev = old.spec.revision()
    md = make_md({"model": {"uri": "s3://models/fraud/model.onnx"}, "replicas": 4})
    observed = Observed(
        jobs=(job(old_rev, "Succeeded"), job(md.spec.revision(), "Running")),
        deployment=deployment(render.render_deployment(old, old_rev, settings)),
        service=render.render_service(md),
    )
    plan = planning.plan(md, observed, settings)
    assert plan.apply == () and plan.scale_to == 4


def test_replica_change_of_a_built_revision_reapplies_without_new_job(
    settings: OperatorSettings,
) -> None:
    md = make_md({"model": {"uri": "s3://models/fraud/model.onnx"}, "replicas": 5})
    assert md.spec.revision() == REV
    observed = Observed(
        jobs=(job(REV, "Succeeded"),),
        deployment=deployment(render.render_deployment(MD, REV, settings)),
        service=render.render_service(MD),
    )
    plan = planning.plan(md, observed, settings)
    assert kinds(plan) == ["Deployment"] and plan.apply[0]["spec"]["replicas"] == 5


def test_failed_build_is_not_retried_by_planning(settings: OperatorSettings) -> None:
    plan = planning.plan(MD, Observed(jobs=(job(REV, "Failed"),)), settings)
    assert plan.writes == 0


def test_superseded_running_builds_are_deleted_and_history_is_bounded() -> None:
    settings = OperatorSettings(kept_build_jobs=1)
    jobs = (
        job("a", "Succeeded", "2026-01-01T00:00:00Z"),
        job("b", "Succeeded", "2026-01-02T00:00:00Z"),
        job("c", "Running", "2026-01-03T00:00:00Z"),
        job(REV, "Running", "2026-01-04T00:00:00Z"),
    )
    plan = planning.plan(MD, Observed(jobs=jobs), settings)
    assert set(plan.delete_jobs) == {"fraud-build-c", "fraud-build-a"}


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
    assert planning.contains(actual, desired) is expected


def test_summary_parsing() -> None:
    text = (
        '{"ok": true, "selected": "int8", "sourceSha256": "ab", "variants": ['
        '{"name": "fp32", "sha256": "1"}, {"name": "int8", "sha256": "2", "accuracy": 0.97, '
        '"p50Ms": 0.4, "p99Ms": 0.9, "selected": true}]}'
    )
    summary = planning.parse_summary(text)
    assert summary is not None and summary.ok and summary.digest == "2"
    assert summary.variants[1].p50_ms == 0.4
    assert planning.parse_summary('{"ok": false, "error": "404 from s3"}').error == "404 from s3"  # type: ignore[union-attr]
    assert planning.parse_summary("Traceback ...") is None
    assert planning.parse_summary(None) is None


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
