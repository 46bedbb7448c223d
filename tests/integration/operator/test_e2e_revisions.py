"""End to end on a real node: revisions side by side under steady load. A new revision starts
beside the serving one, the model's Service moves only when all its pods are ready, the old one
drains then sleeps at zero; going back needs no build; the single Deployment of earlier
operators is migrated. Zero failed requests throughout."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship import api, naming, render
from modelship.settings import OperatorSettings
from modelship.timestamps import format_time

from tests.support import kstatus
from tests.support.health_fixtures import capture
from tests.support.load import SteadyLoad
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, ReadyWatch, model_file, serving_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _selected(models: Models, name: str) -> str | None:
    service = models.core.read_namespaced_service(name, models.namespace)
    return (service.spec.selector or {}).get(naming.REVISION_LABEL)


def _pods(models: Models, selector: dict[str, str]) -> list[Any]:
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    return list(models.core.list_namespaced_pod(models.namespace, label_selector=labels).items)


def _moved_after_all_ready(models: Models, name: str, revision: str) -> None:
    """The Service was last written after every pod of `revision` became ready (both clocks are
    the apiserver's and the kubelet's on this one machine, with one-second resolution)."""
    service = models.core.read_namespaced_service(name, models.namespace)
    (written,) = [
        f.time for f in service.metadata.managed_fields if f.manager == "modelship-operator"
    ]
    pods = _pods(models, naming.RevisionIdentity(name, models.namespace, revision, {}).selector)
    assert pods, f"no pod of revision {revision}"
    for pod in pods:
        (ready,) = [c for c in pod.status.conditions if c.type == "Ready"]
        detail = (pod.metadata.name, ready, written, pod.status.container_statuses)
        assert ready.status == "True", detail
        assert ready.last_transition_time <= written, detail


def _scaled_to_zero(models: Models, name: str, revision: str) -> bool:
    deployment = models.apps.read_namespaced_deployment(f"{name}-{revision}", models.namespace)
    gone = not _pods(models, naming.RevisionIdentity(name, models.namespace, revision, {}).selector)
    return deployment.spec.replicas == 0 and gone


def _job_names(models: Models, name: str) -> set[str]:
    return {j.metadata.name for j in models.jobs(name)}


def test_switching_revisions_under_load_loses_no_request_and_going_back_needs_no_build(
    models: Models, serving_operator: OperatorProcess
) -> None:
    first, second = model_file(models.namespace, "a", 0.1), model_file(models.namespace, "b", 0.2)
    serving_operator.start()
    models.create("linear", {"model": {"uri": first}, "replicas": 3})
    rev_a = wait_until(
        lambda: models.ready_stable("linear"), timeout=300, what="md/linear Ready at 3 replicas"
    )
    assert models.status("linear")["readyReplicas"] == 3
    service = models.core.read_namespaced_service("linear", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "linear").start()
    watch = ReadyWatch(models, "linear").start()
    try:
        wait_until(lambda: load.answered_by(rev_a) >= 20, timeout=30, what="load answered")

        assert kstatus.verdict(models.get("linear"))[0] == "Current"
        models.patch_spec("linear", {"model": {"uri": second}})
        # What Flux and kstatus-based tools see while the new revision builds and starts.
        wait_until(
            lambda: kstatus.verdict(models.get("linear"))[0] == "InProgress",
            timeout=30,
            what="kstatus InProgress during the switch",
        )

        def switching() -> dict[str, Any] | None:
            md = models.get("linear")
            status = md.get("status") or {}
            observed = status.get("observedGeneration") == md["metadata"]["generation"]
            return md if observed and status.get("phase") in ("Building", "Deploying") else None

        # The operator's own word for the switch, once it has seen the change.
        capture("switching-while-serving", wait_until(switching, timeout=120, what="switching"))
        rev_b = wait_until(
            lambda: (s := models.ready_stable("linear")) != rev_a and s,
            timeout=300,
            what="the new revision stable",
        )
        _moved_after_all_ready(models, "linear", rev_b)
        assert kstatus.verdict(models.get("linear"))[0] == "Current"
        status = models.status("linear")
        assert status["lastDecision"]["action"] == "Replaced"
        assert f"revision {rev_b} replaced {rev_a}" in status["lastDecision"]["reason"]
        wait_until(
            lambda: _scaled_to_zero(models, "linear", rev_a),
            timeout=60,
            what="the old revision scaled to zero after its drain",
        )
        retired = models.status("linear")["revisions"]["retired"]
        assert [r["revision"] for r in retired] == [rev_a]
        wait_until(lambda: load.answered_by(rev_b) >= 20, timeout=30, what="new revision answers")
        built = _job_names(models, "linear")
        assert len(built) == 2

        # Back to the first model: its sleeping Deployment wakes, no build Job is made.
        models.patch_spec("linear", {"model": {"uri": first}})
        wait_until(
            lambda: models.ready_stable("linear") == rev_a, timeout=180, what="back on revision a"
        )
        _moved_after_all_ready(models, "linear", rev_a)
        assert _job_names(models, "linear") == built
        wait_until(
            lambda: _scaled_to_zero(models, "linear", rev_b),
            timeout=60,
            what="revision b asleep in its turn",
        )
        wait_until(lambda: load.answered_by(rev_a) >= 60, timeout=30, what="a answers again")
    finally:
        outcomes = load.stop()
        watch.stop()
    print(f"answers per revision: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], serving_operator.output()
    assert watch.samples > 10 and watch.not_ready == []
    assert set(outcomes.by_revision) == {rev_a, rev_b}


def _legacy_layout(models: Models, name: str, replicas: int) -> str:
    """Build and serve a model the way operators before per-revision Deployments did: one
    Deployment named like the model, a Service selecting every serving pod, status written."""
    md = api.ModelDeployment.from_body(models.get(name))
    revision = md.spec.revision()
    settings = OperatorSettings.from_env(serving_env())
    models.batch.create_namespaced_job(
        models.namespace, render.render_build_job(md, revision, settings)
    )
    models.core.create_namespaced_secret(
        models.namespace, render.render_feedback_key_secret(md, b"k" * 32)
    )
    deployment = render.render_deployment(
        md, naming.RevisionIdentity.of(md, revision), settings, replicas, digest=None
    )
    deployment["metadata"]["name"] = naming.legacy_deployment_name(name)
    deployment["metadata"]["labels"] = naming.common_labels(name, "server")
    deployment["spec"]["selector"]["matchLabels"] = naming.server_selector(name)
    deployment["spec"]["template"]["metadata"]["labels"].pop(naming.DEPLOYMENT_LABEL)
    pod = deployment["spec"]["template"]["spec"]
    pod.pop("terminationGracePeriodSeconds")
    pod["containers"][0].pop("lifecycle")  # those pods had no drain of their own
    wait_until(
        lambda: (
            models.batch.read_namespaced_job(
                naming.build_job_name(name, revision), models.namespace
            ).status.succeeded
        ),
        timeout=300,
        what="the build Job succeeded",
    )
    models.apps.create_namespaced_deployment(models.namespace, deployment)
    models.core.create_namespaced_service(
        models.namespace, render.render_service(md, naming.server_selector(name))
    )
    wait_until(
        lambda: (
            models.apps.read_namespaced_deployment(name, models.namespace).status.ready_replicas
            == replicas
        ),
        timeout=180,
        what="the legacy Deployment ready",
    )
    now = format_time(datetime.datetime.now(datetime.UTC))
    ready = {"type": "Ready", "status": "True", "reason": "Serving", "lastTransitionTime": now}
    models.custom.patch_namespaced_custom_object_status(
        api.GROUP,
        api.VERSION,
        models.namespace,
        api.PLURAL,
        name,
        {
            "status": {
                "phase": "Ready",
                "observedGeneration": 1,
                "conditions": [ready],
                "revisions": {"current": {"revision": revision}, "stable": {"revision": revision}},
                "feedbackKeySecret": naming.feedback_key_name(name),
            }
        },
    )
    return revision


def test_the_single_deployment_of_earlier_operators_is_migrated_under_load(
    models: Models, serving_operator: OperatorProcess
) -> None:
    models.create(
        "legacy", {"model": {"uri": model_file(models.namespace, "c", 0.3)}, "replicas": 2}
    )
    revision = _legacy_layout(models, "legacy", 2)
    service = models.core.read_namespaced_service("legacy", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "legacy").start()
    watch = ReadyWatch(models, "legacy").start()
    try:
        wait_until(lambda: load.answered_by(revision) >= 20, timeout=30, what="load answered")
        serving_operator.start()
        wait_until(
            lambda: _selected(models, "legacy") == revision,
            timeout=180,
            what="the Service moved to the per-revision Deployment",
        )
        _moved_after_all_ready(models, "legacy", revision)

        def legacy_gone() -> bool:
            try:
                models.apps.read_namespaced_deployment("legacy", models.namespace)
            except ApiException as exc:
                return exc.status == 404
            return False

        wait_until(legacy_gone, timeout=60, what="the legacy Deployment deleted after its drain")
        wait_until(
            lambda: (
                not [
                    p
                    for p in _pods(models, naming.server_selector("legacy"))
                    if naming.REVISION_LABEL in p.metadata.labels
                    and not p.metadata.name.startswith(f"legacy-{revision}-")
                ]
            ),
            timeout=60,
            what="the legacy pods gone",
        )
        assert models.ready_stable("legacy") == revision
        served = load.answered_by(revision)
        wait_until(lambda: load.answered_by(revision) >= served + 20, timeout=30, what="serving")
        # The build was not redone: the per-revision Deployment serves the same artifact.
        assert _job_names(models, "legacy") == {naming.build_job_name("legacy", revision)}
    finally:
        outcomes = load.stop()
        watch.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], serving_operator.output()
    assert watch.samples > 5 and watch.not_ready == []
