"""End to end on a real node: status that tells the truth when a revision fails, read the way
kstatus (so Flux and Argo CD) reads it. A revision whose pods never become ready is failed by
its deadline while the stable one serves every request; a brand-new model that can never start
is Stalled and not Ready; a lost pod is Degraded with the count; a deleted feedback-key Secret is
made again."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import naming

from tests.support import kstatus
from tests.support.health_fixtures import capture
from tests.support.load import SteadyLoad
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, ReadyWatch, model_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Far below what the runtime needs: its server is OOM-killed at start, every time.
STARVED = {"resources": {"limits": {"memory": "24Mi"}}}
DEADLINE = 40


def _condition(models: Models, name: str, type_: str, status: str) -> dict[str, Any] | None:
    md = models.get(name)
    current = (md.get("status") or {}).get("observedGeneration") == md["metadata"]["generation"]
    found = models.condition(name, type_)
    return found if current and found is not None and found["status"] == status else None


def test_a_revision_that_never_gets_ready_fails_by_its_deadline_while_stable_serves(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    spec = {
        "model": {"uri": model_file(models.namespace, "fragile", 0.1)},
        "replicas": 2,
        "rollout": {"progressDeadlineSeconds": DEADLINE},
    }
    models.create("fragile", spec)
    stable = wait_until(
        lambda: models.ready_stable("fragile"), timeout=300, what="md/fragile Ready"
    )
    assert kstatus.verdict(models.get("fragile"))[0] == "Current"
    service = models.core.read_namespaced_service("fragile", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "fragile").start()
    watch = ReadyWatch(models, "fragile").start()
    try:
        models.patch_spec("fragile", {"runtime": STARVED})
        broken = wait_until(
            lambda: (
                (r := models.status("fragile")["revisions"]["current"]["revision"]) != stable and r
            ),
            timeout=30,
            what="the starved revision current",
        )
        stalled = wait_until(
            lambda: _condition(models, "fragile", "Stalled", "True"),
            timeout=DEADLINE + 240,
            what="the starved revision failed by its deadline",
        )
        assert stalled["reason"] == "ProgressDeadlineExceeded"
        assert f"revision {broken}" in stalled["message"]
        assert "OOMKilled" in stalled["message"], stalled
        degraded = models.condition("fragile", "Degraded")
        assert degraded is not None and degraded["status"] == "True"
        assert f"revision {broken}" in degraded["message"]
        ready = models.condition("fragile", "Ready")
        assert ready is not None and ready["status"] == "True", ready
        verdict, message = kstatus.verdict(models.get("fragile"))
        assert verdict == "Failed", message
        capture("deadline-missed-while-stable-serves", models.get("fragile"))
        # The failed revision sleeps at zero; the stable one keeps the Service.
        name = naming.revision_name("fragile", broken)
        wait_until(
            lambda: (
                models.apps.read_namespaced_deployment(name, models.namespace).spec.replicas == 0
            ),
            timeout=30,
            what="the failed revision scaled to zero",
        )
        selector = models.core.read_namespaced_service("fragile", models.namespace).spec.selector
        assert selector[naming.REVISION_LABEL] == stable

        # Fixing the spec recovers by itself: back to the stable revision, nothing stalls.
        models.patch_spec("fragile", {"runtime": {"resources": None}})
        wait_until(
            lambda: (
                models.ready_stable("fragile") == stable
                and _condition(models, "fragile", "Stalled", "False")
            ),
            timeout=120,
            what="md/fragile Ready again",
        )
        assert kstatus.verdict(models.get("fragile"))[0] == "Current"
    finally:
        outcomes = load.stop()
        watch.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], serving_operator.output()
    assert set(outcomes.by_revision) == {stable}
    assert watch.samples > 10 and watch.not_ready == []


def test_a_new_model_that_can_never_start_is_stalled_and_not_ready(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    spec = {
        "model": {"uri": model_file(models.namespace, "doomed", 0.1)},
        "runtime": STARVED,
        "rollout": {"progressDeadlineSeconds": DEADLINE},
    }
    models.create("doomed", spec)
    stalled = wait_until(
        lambda: _condition(models, "doomed", "Stalled", "True"),
        timeout=DEADLINE + 240,
        what="md/doomed stalled",
    )
    assert stalled["reason"] == "ProgressDeadlineExceeded" and "OOMKilled" in stalled["message"]
    status = models.status("doomed")
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Reconciling"]["status"] == "False"
    verdict, message = kstatus.verdict(models.get("doomed"))
    assert verdict == "Failed" and "OOMKilled" in message, message
    capture("never-started", models.get("doomed"))


def _events(models: Models, name: str, before: frozenset[str] = frozenset()) -> list[str]:
    """The model's Events as "reason: message", leaving out those named in `before`."""
    return [
        f"{e.reason}: {e.message}" for e in models.events(name) if e.metadata.name not in before
    ]


def test_a_lost_pod_is_degraded_with_the_count_and_a_deleted_key_is_made_again(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    models.create(
        "trio", {"model": {"uri": model_file(models.namespace, "trio", 0.1)}, "replicas": 3}
    )
    revision = wait_until(lambda: models.ready_stable("trio"), timeout=300, what="md/trio Ready")
    selector = naming.RevisionIdentity("trio", models.namespace, revision, {}).selector
    labels = ",".join(f"{k}={v}" for k, v in selector.items())

    def pods() -> list[Any]:
        found = models.core.list_namespaced_pod(models.namespace, label_selector=labels).items
        return [p for p in found if p.metadata.deletion_timestamp is None]

    before = frozenset(e.metadata.name for e in models.events("trio"))
    models.core.delete_namespaced_pod(pods()[0].metadata.name, models.namespace)
    wait_until(
        lambda: any(
            e.startswith("Degraded:") and "2/3 replicas ready" in e
            for e in _events(models, "trio", before)
        ),
        timeout=60,
        what="a Degraded event with the count",
    )
    wait_until(lambda: models.ready_stable("trio") == revision, timeout=120, what="recovered")
    assert not [e for e in _events(models, "trio", before) if e.startswith("Deploying:")]

    # The key Secret is deleted, then a pod: the new pod can only start with the key.
    key = naming.feedback_key_name("trio")
    old_uid = models.core.read_namespaced_secret(key, models.namespace).metadata.uid
    models.core.delete_namespaced_secret(key, models.namespace)
    victim = pods()[0].metadata.name
    models.core.delete_namespaced_pod(victim, models.namespace)
    wait_until(
        lambda: models.core.read_namespaced_secret(key, models.namespace).metadata.uid != old_uid,
        timeout=120,
        what="the feedback-key Secret made again",
    )
    wait_until(
        lambda: len([p for p in pods() if p.metadata.name != victim and _ready(p)]) == 3,
        timeout=240,
        what="a new pod started with the new key",
    )
    wait_until(lambda: models.ready_stable("trio") == revision, timeout=60, what="Ready 3/3")


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
