"""End to end on a real node: canary steps with the replicas router under steady load. Each
step shows its pods per revision, the last step promotes, pause holds a step, abort rolls back
and retry starts the revision again, an operator killed mid-step continues it; zero failed
requests throughout, every decision in status.history and in Events once."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import naming, rollout

from tests.support.health_fixtures import capture
from tests.support.load import SteadyLoad
from tests.support.waiting import holds_for, wait_until

from .conftest import Models, OperatorProcess, ReadyWatch, model_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _ready_pods(models: Models, name: str, revision: str) -> int:
    selector = naming.RevisionIdentity(name, models.namespace, revision, {}).selector
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    pods = models.core.list_namespaced_pod(models.namespace, label_selector=labels).items
    return sum(
        1
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    )


def _canary(models: Models, name: str) -> dict[str, Any]:
    return dict(models.status(name).get("canary") or {})


def _at_step(models: Models, name: str, step: int) -> dict[str, Any] | None:
    """The canary once its step has begun (its pods in place), else None."""
    canary = _canary(models, name)
    return canary if canary.get("step") == step and canary.get("stepStartedAt") else None


def _decisions(models: Models, name: str) -> list[str]:
    wanted = {"StepAdvanced", "Promoted", "RolledBack", "Paused", "Resumed"}
    return sorted(e.reason for e in models.events(name) if e.reason in wanted)


def _wait_decisions(models: Models, name: str, expected: list[str]) -> None:
    """The decision Events are exactly `expected` (sorted): each one posted, none twice."""
    wait_until(
        lambda: _decisions(models, name) == expected,
        timeout=30,
        what=f"decision Events {expected} (have {_decisions(models, name)})",
    )


def _start(models: Models, name: str, replicas: int, rollout_: dict[str, Any]) -> tuple[str, str]:
    """A model Ready at `replicas` on its first revision; then a second model file is ready
    to roll out. Returns (stable revision, URI of the next model)."""
    spec = {
        "model": {"uri": model_file(models.namespace, f"{name}-a", 0.1)},
        "replicas": replicas,
        "rollout": rollout_,
    }
    models.create(name, spec)
    stable = wait_until(lambda: models.ready_stable(name), timeout=300, what=f"md/{name} Ready")
    return stable, model_file(models.namespace, f"{name}-b", 0.2)


def _new_revision(models: Models, name: str, old: str) -> str:
    return wait_until(
        lambda: (r := models.status(name)["revisions"]["current"]["revision"]) != old and r,
        timeout=30,
        what="the new revision current",
    )


def test_steps_move_pods_and_promote_with_no_failed_request(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    stable, next_model = _start(models, "steps", 4, {"steps": [25, 50, 100], "interval": "10s"})
    service = models.core.read_namespaced_service("steps", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "steps").start()
    watch = ReadyWatch(models, "steps").start()
    try:
        wait_until(lambda: load.answered_by(stable) >= 20, timeout=30, what="load answered")
        models.patch_spec("steps", {"model": {"uri": next_model}})
        canary = _new_revision(models, "steps", stable)

        first = wait_until(lambda: _at_step(models, "steps", 0), timeout=240, what="step 1")
        assert (first["weight"], first["canaryReplicas"], first["stableReplicas"]) == (25, 1, 3)
        assert (_ready_pods(models, "steps", canary), _ready_pods(models, "steps", stable)) == (
            1,
            3,
        )
        ready = models.condition("steps", "Progressing")
        assert ready is not None and "replicas router" in ready["message"]
        capture("canary-step", models.get("steps"))
        wait_until(lambda: load.answered_by(canary) >= 1, timeout=30, what="the canary answers")

        second = wait_until(lambda: _at_step(models, "steps", 1), timeout=60, what="step 2")
        assert (second["weight"], second["canaryReplicas"], second["stableReplicas"]) == (50, 2, 2)
        assert (_ready_pods(models, "steps", canary), _ready_pods(models, "steps", stable)) == (
            2,
            2,
        )

        wait_until(lambda: models.ready_stable("steps") == canary, timeout=120, what="promoted")
        status = models.status("steps")
        assert status["lastDecision"]["action"] == "Promoted"
        assert "canary" not in status
        history = [(h["revision"], h["outcome"]) for h in status["history"]]
        assert history == [(stable, "Replaced"), (canary, "Promoted")]
        selector = models.core.read_namespaced_service("steps", models.namespace).spec.selector
        assert selector[naming.REVISION_LABEL] == canary
        wait_until(
            lambda: _ready_pods(models, "steps", stable) == 0, timeout=60, what="old drained"
        )
    finally:
        outcomes = load.stop()
        watch.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], serving_operator.output()
    assert set(outcomes.by_revision) == {stable, canary}
    assert watch.not_ready == []
    # Each decision once: two steps advanced, one promotion (an Event follows its status write).
    _wait_decisions(models, "steps", ["Promoted", "StepAdvanced", "StepAdvanced"])


def _canary_replicas(models: Models, name: str, revision: str) -> int:
    deployment = models.apps.read_namespaced_deployment(
        naming.revision_name(name, revision), models.namespace
    )
    return int(deployment.spec.replicas or 0)


def test_pause_holds_abort_rolls_back_and_retry_starts_again(
    models: Models, serving_operator: OperatorProcess
) -> None:
    interval = 5
    serving_operator.start()
    stable, next_model = _start(
        models, "held", 2, {"steps": [50, 100], "interval": f"{interval}s", "paused": True}
    )
    service = models.core.read_namespaced_service("held", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "held").start()
    try:
        wait_until(lambda: load.answered_by(stable) >= 20, timeout=30, what="load answered")
        models.patch_spec("held", {"model": {"uri": next_model}})
        canary = _new_revision(models, "held", stable)
        held = wait_until(
            lambda: (c := _canary(models, "held")).get("paused") and c,
            timeout=240,
            what="the first step held by spec.rollout.paused",
        )
        assert held["step"] == 0 and models.status("held")["lastDecision"]["action"] == "Paused"
        capture("canary-paused", models.get("held"))

        # Held for three intervals: observed throughout, the step never moves.
        def still_at_step_one() -> None:
            assert _canary(models, "held")["step"] == 0

        holds_for(still_at_step_one, seconds=3 * interval)
        assert models.ready_stable("held") is None  # not promoted: still Progressing

        models.act("held", "abort")
        wait_until(
            lambda: models.status("held")["lastDecision"]["action"] == "RolledBack",
            timeout=30,
            what="rolled back",
        )
        wait_until(
            lambda: (
                rollout.ACTION_ANNOTATION
                not in (models.get("held")["metadata"].get("annotations") or {})
            ),
            timeout=30,
            what="the annotation removed",
        )
        degraded = models.condition("held", "Degraded")
        assert degraded is not None and degraded["status"] == "True"
        assert f"revision {canary} rolled back" in degraded["message"]
        capture("rolled-back", models.get("held"))
        selector = models.core.read_namespaced_service("held", models.namespace).spec.selector
        assert selector[naming.REVISION_LABEL] == stable
        wait_until(
            lambda: _ready_pods(models, "held", canary) == 0, timeout=60, what="canary drained"
        )

        # Not started again by itself over three intervals (observed throughout).
        def still_asleep() -> None:
            assert _canary_replicas(models, "held", canary) == 0

        holds_for(still_asleep, seconds=3 * interval)

        # retry, by annotation alone (the spec is unchanged): the revision starts again.
        models.act("held", "retry")
        wait_until(
            lambda: (
                _canary(models, "held").get("revision") == canary
                and _canary_replicas(models, "held", canary) > 0
            ),
            timeout=60,
            what="the canary started again by retry",
        )
        models.patch_spec("held", {"rollout": {"paused": False}})
        wait_until(lambda: models.ready_stable("held") == canary, timeout=240, what="promoted")
    finally:
        outcomes = load.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], serving_operator.output()
    history = [(h["revision"], h["outcome"]) for h in models.status("held")["history"]]
    assert history == [(stable, "Replaced"), (canary, "RolledBack"), (canary, "Promoted")]


def test_an_operator_killed_mid_step_continues_it(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    stable, next_model = _start(models, "crash", 2, {"steps": [50, 100], "interval": "20s"})
    models.patch_spec("crash", {"model": {"uri": next_model}})
    canary = _new_revision(models, "crash", stable)
    begun = wait_until(lambda: _at_step(models, "crash", 0), timeout=240, what="step 1 begun")
    serving_operator.kill()
    serving_operator.start()
    wait_until(lambda: models.ready_stable("crash") == canary, timeout=180, what="promoted")
    status = models.status("crash")
    # The same step, same start: resumed, not restarted (no second StepAdvanced, no new clock).
    _wait_decisions(models, "crash", ["Promoted", "StepAdvanced"])
    assert status["history"][-1]["revision"] == canary
    assert begun["stepStartedAt"] <= status["lastDecision"]["at"]
