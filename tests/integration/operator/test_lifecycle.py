"""The operator in-process (kopf's runner): children, status, revisions, drift and deletion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.exceptions import ApiException
from modelship import api

from tests.support import kstatus
from tests.support.health_fixtures import capture
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {"model": {"uri": "s3://models/fraud/v1/model.onnx"}}


def _owner_uid(obj: Any) -> str:
    (ref,) = obj.metadata.owner_references
    assert ref.kind == api.KIND and ref.controller and ref.block_owner_deletion
    return str(ref.uid)


def _build(models: Models, name: str) -> Any:
    """Let the single build Job of md/name finish successfully; returns it."""
    (job,) = models.wait_jobs(name, 1)
    models.finish_job(job.metadata.name, succeeded=True)
    return job


def test_create_builds_then_deploys_with_owned_children(
    models: Models, kopf_operator: KopfRunner
) -> None:
    md = models.create("fraud", SPEC)
    uid = md["metadata"]["uid"]
    (job,) = models.wait_jobs("fraud", 1)
    assert _owner_uid(job) == uid
    assert job.metadata.labels["app.kubernetes.io/managed-by"] == "modelship-operator"
    status = models.wait_phase("fraud", "Building")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Progressing"]["status"] == "True"
    assert conditions["BuildSucceeded"]["status"] == "Unknown"
    assert kstatus.verdict(models.get("fraud"))[0] == "InProgress"
    capture("building", models.get("fraud"))
    assert status["selector"] == (
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=fraud"
    )
    assert status["url"] == f"http://fraud.{models.namespace}.svc:8080/v2/models/fraud"
    # The key that signs prediction tokens: made once, owned, recorded so it is never remade.
    assert status["feedbackKeySecret"] == "fraud-feedback-key"
    secret = models.core.read_namespaced_secret("fraud-feedback-key", models.namespace)
    assert _owner_uid(secret) == uid and len(secret.data["key"]) >= 40
    revision = status["revisions"]["current"]["revision"]
    assert job.metadata.name == f"fraud-build-{revision}"

    models.finish_job(job.metadata.name, succeeded=True)
    status = models.wait_phase("fraud", "Deploying")
    assert {c["type"]: c["status"] for c in status["conditions"]}["BuildSucceeded"] == "True"
    # A Deployment and a Service per revision; the model's Service selects the first one at
    # once (nothing else serves).
    deployment = models.apps.read_namespaced_deployment(f"fraud-{revision}", models.namespace)
    own = models.core.read_namespaced_service(f"fraud-{revision}", models.namespace)
    service = models.core.read_namespaced_service("fraud", models.namespace)
    assert _owner_uid(deployment) == uid and _owner_uid(service) == uid and _owner_uid(own) == uid
    assert deployment.spec.selector.match_labels["modelship.io/revision"] == revision
    assert (
        service.spec.selector["modelship.io/revision"]
        == revision
        == own.spec.selector["modelship.io/revision"]
    )
    template = deployment.spec.template
    assert template.metadata.labels["modelship.io/revision"] == revision
    assert template.spec.containers[0].command == ["modelship-runtime", "serve"]
    assert template.spec.init_containers[0].command == ["modelship-runtime", "fetch"]
    reasons = wait_until(
        lambda: (
            {"Building", "BuildSucceeded", "Deploying"}
            <= {e.reason for e in models.events("fraud")}
        ),
        timeout=15,
        what="an Event per transition",
    )
    assert reasons
    # The operator never writes spec: generation is still the one the user created.
    assert models.get("fraud")["metadata"]["generation"] == 1


def test_model_change_makes_a_new_revision_and_build(
    models: Models, kopf_operator: KopfRunner
) -> None:
    models.create("fraud", SPEC)
    first = _build(models, "fraud")
    models.wait_phase("fraud", "Deploying")
    models.patch_spec("fraud", {"model": {"uri": "s3://models/fraud/v2/model.onnx"}})
    jobs = models.wait_jobs("fraud", 2)
    new = next(j for j in jobs if j.metadata.name != first.metadata.name)
    old_rev = first.metadata.labels["modelship.io/revision"]
    new_rev = new.metadata.labels["modelship.io/revision"]
    status = models.wait_phase("fraud", "Building")
    assert status["revisions"]["current"]["revision"] == new_rev

    def selected() -> str:
        service = models.core.read_namespaced_service("fraud", models.namespace)
        return str(service.spec.selector["modelship.io/revision"])

    # The old revision keeps its Deployment and the Service while the new one builds.
    assert selected() == old_rev
    models.apps.read_namespaced_deployment(f"fraud-{old_rev}", models.namespace)
    models.finish_job(new.metadata.name, succeeded=True)
    status = models.wait_phase("fraud", "Deploying")
    # The new revision starts beside it; its pods never become ready here (the image is never
    # pulled), so the Service stays on the old revision.
    deployment = wait_until(
        lambda: models.apps.read_namespaced_deployment(f"fraud-{new_rev}", models.namespace),
        timeout=15,
        what="the new revision's Deployment",
    )
    assert deployment.spec.template.metadata.labels["modelship.io/revision"] == new_rev
    progressing = wait_until(
        lambda: (
            c
            if (c := models.condition("fraud", "Progressing")) and c["reason"] == "RevisionStarting"
            else None
        ),
        timeout=15,
        what="Progressing says the new revision starts",
    )
    assert f"starting revision {new_rev}: 0/1" in progressing["message"]
    assert selected() == old_rev
    assert (
        models.apps.read_namespaced_deployment(f"fraud-{old_rev}", models.namespace).spec.replicas
        == 1
    )


def test_scaling_change_makes_no_new_revision(models: Models, kopf_operator: KopfRunner) -> None:
    models.create("fraud", SPEC)
    _build(models, "fraud")
    before = models.wait_phase("fraud", "Deploying")["revisions"]["current"]["revision"]
    name = f"fraud-{before}"
    # The scale subresource, as `kubectl scale md/fraud --replicas=3` and an HPA use it.
    models.custom.patch_namespaced_custom_object_scale(
        api.GROUP, api.VERSION, models.namespace, api.PLURAL, "fraud", {"spec": {"replicas": 3}}
    )
    models.patch_spec("fraud", {"scaling": {"minReplicas": 1, "maxReplicas": 4}})
    wait_until(
        lambda: models.apps.read_namespaced_deployment(name, models.namespace).spec.replicas == 3,
        timeout=15,
        what="the Deployment scaled to 3",
    )
    status = models.wait_phase("fraud", "Deploying")
    assert status["revisions"]["current"]["revision"] == before
    assert len(models.jobs("fraud")) == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert "ScalingActive" not in conditions and "autoscaling" not in status  # no targets
    scale = models.custom.get_namespaced_custom_object_scale(
        api.GROUP, api.VERSION, models.namespace, api.PLURAL, "fraud"
    )
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == status["selector"]


def test_an_autoscaled_model_starts_at_min_replicas_and_waits_for_metrics(
    models: Models, kopf_operator: KopfRunner
) -> None:
    spec = {**SPEC, "scaling": {"minReplicas": 2, "targets": {"concurrencyPerReplica": 4}}}
    models.create("fraud", spec)
    _build(models, "fraud")
    status = models.wait_phase("fraud", "Deploying")
    revision = status["revisions"]["current"]["revision"]
    deployment = models.apps.read_namespaced_deployment(f"fraud-{revision}", models.namespace)
    assert deployment.spec.replicas == 2
    # Nothing serves yet (the image is never pulled): nothing measured, nothing decided.
    conditions = {c["type"]: c for c in status["conditions"]}
    scaling = conditions["ScalingActive"]
    assert (scaling["status"], scaling["reason"]) == ("Unknown", "AwaitingMetrics")
    assert "autoscaling" not in status
    assert models.get("fraud")["spec"]["replicas"] == 1  # the API's default, never written


def test_failed_build_sets_failed_with_the_reason(
    models: Models, kopf_operator: KopfRunner
) -> None:
    models.create("fraud", SPEC)
    (job,) = models.wait_jobs("fraud", 1)
    models.finish_job(job.metadata.name, succeeded=False)
    status = models.wait_phase("fraud", "Failed")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Degraded"]["reason"] == "BuildFailed"
    assert "BackoffLimitExceeded" in conditions["BuildSucceeded"]["message"]
    assert conditions["Stalled"]["status"] == "True"
    assert status["build"]["state"] == "Failed"
    verdict, message = kstatus.verdict(models.get("fraud"))
    assert verdict == "Failed" and "BackoffLimitExceeded" in message, message
    capture("build-failed", models.get("fraud"))
    # A failed build is not retried in a loop: still exactly one Job.
    assert len(models.jobs("fraud")) == 1
    wait_until(
        lambda: any(
            e.reason == "BuildFailed" and e.type == "Warning" for e in models.events("fraud")
        ),
        timeout=15,
        what="a BuildFailed warning event",
    )


def test_drifted_children_are_repaired(models: Models, kopf_operator: KopfRunner) -> None:
    models.create("fraud", SPEC)
    _build(models, "fraud")
    name = "fraud-" + models.wait_phase("fraud", "Deploying")["revisions"]["current"]["revision"]
    models.core.delete_namespaced_service("fraud", models.namespace)
    wait_until(
        lambda: (
            models.core.read_namespaced_service(
                "fraud", models.namespace
            ).metadata.deletion_timestamp
            is None
        ),
        timeout=20,
        what="the deleted Service recreated",
    )
    models.apps.patch_namespaced_deployment(
        name,
        models.namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "server", "image": "x/y:1"}]}}}},
    )
    wait_until(
        lambda: (
            models.apps.read_namespaced_deployment(name, models.namespace)
            .spec.template.spec.containers[0]
            .image
            != "x/y:1"
        ),
        timeout=20,
        what="the Deployment's image restored",
    )


def test_deletion_garbage_collects_every_child(models: Models, kopf_operator: KopfRunner) -> None:
    models.create("fraud", SPEC)
    _build(models, "fraud")
    name = "fraud-" + models.wait_phase("fraud", "Deploying")["revisions"]["current"]["revision"]
    models.delete("fraud")

    def gone() -> bool:
        try:
            models.apps.read_namespaced_deployment(name, models.namespace)
            return False
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            models.core.read_namespaced_service("fraud", models.namespace)
            return False
        except ApiException as exc:
            if exc.status != 404:
                raise
        return not models.jobs("fraud")

    wait_until(gone, timeout=60, what="Job, Deployment and Service garbage-collected")


def test_a_foreign_object_with_a_childs_name_is_left_alone_with_name_conflict(
    models: Models, kopf_operator: KopfRunner
) -> None:
    revision = api.ModelDeploymentSpec.model_validate(SPEC).revision()
    held = f"fraud-{revision}"
    # Someone else's Deployment holds the name the revision's Deployment would have.
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": held, "labels": {"team": "payments"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "app", "image": "example.com/theirs:1"}]},
            },
        },
    }
    models.apps.create_namespaced_deployment(models.namespace, foreign)
    before = models.apps.read_namespaced_deployment(held, models.namespace)
    models.create("fraud", SPEC)
    _build(models, "fraud")
    conflict = wait_until(
        lambda: models.condition("fraud", "NameConflict"), timeout=30, what="NameConflict"
    )
    assert conflict["status"] == "True"
    assert f"Deployment {models.namespace}/{held}" in conflict["message"]
    status = models.status("fraud")
    assert status["phase"] == "Failed"  # nothing else serves the model
    stalled = models.condition("fraud", "Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict"
    capture("name-conflict", models.get("fraud"))
    wait_until(
        lambda: "NameConflict" in {e.reason for e in models.events("fraud")},
        timeout=15,
        what="a NameConflict Event",
    )
    # Neither adopted nor overwritten: the same object, untouched.
    after = models.apps.read_namespaced_deployment(held, models.namespace)
    assert after.metadata.owner_references is None
    assert after.metadata.generation == before.metadata.generation  # its spec never written
    assert after.metadata.labels == {"team": "payments"}
    assert after.spec.template.spec.containers[0].image == "example.com/theirs:1"
    assert "modelship-operator" not in {f.manager for f in after.metadata.managed_fields}
    # Its own revision Service was made beside it (the conflict is the Deployment alone).
    own = models.core.read_namespaced_service(held, models.namespace)
    assert _owner_uid(own) == models.get("fraud")["metadata"]["uid"]


def test_host_paths_are_refused_outside_development_mode(
    models: Models, operator_environment: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **operator_environment,
        "MODELSHIP_DEVELOPMENT": "false",
        "MODELSHIP_ARTIFACT_STORE": "file:///var/lib/modelship/test-artifacts",
    }
    operator = OperatorProcess(models.namespace, env, tmp_path / "operator.log")
    operator.start()
    try:
        models.create("local", {"model": {"uri": "file:///etc/passwd.onnx"}})
        models.create("stored", SPEC)
        for name, named in (("local", "spec.model.uri"), ("stored", "MODELSHIP_ARTIFACT_STORE")):
            stalled = wait_until(
                lambda n=name: (
                    (c := models.condition(n, "Stalled")) and c["status"] == "True" and c
                ),
                timeout=30,
                what=f"md/{name} Stalled",
            )
            assert stalled["reason"] == "HostPathRefused", stalled
            assert (
                named in stalled["message"] and "MODELSHIP_DEVELOPMENT=true" in stalled["message"]
            )
            assert models.status(name)["phase"] == "Failed"
            # Nothing was made that would mount the node's disk.
            assert models.jobs(name) == []
            deployments = models.apps.list_namespaced_deployment(
                models.namespace, label_selector=f"app.kubernetes.io/instance={name}"
            )
            assert deployments.items == []
        wait_until(
            lambda: "HostPathRefused" in {e.reason for e in models.events("local")},
            timeout=15,
            what="a HostPathRefused Event",
        )
    finally:
        operator.stop()
