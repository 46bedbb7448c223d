"""`modelship-operator` as a subprocess: health, metrics, and a crash mid-build."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import api

from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, http_get

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {"model": {"uri": "s3://models/fraud/v1/model.onnx"}}
# Where kopf keeps the last handled spec (handlers.py configures the prefix).
LAST_HANDLED = f"{api.GROUP}/last-handled-configuration"


def test_process_reconciles_and_serves_health_and_metrics(
    models: Models, operator_process: OperatorProcess
) -> None:
    models.create("fraud", SPEC)
    models.wait_jobs("fraud", 1)
    models.wait_phase("fraud", "Building")
    health = f"http://127.0.0.1:{operator_process.env['MODELSHIP_HEALTH_PORT']}/healthz"
    status, _ = wait_until(lambda: http_get(health), timeout=15, what="the liveness endpoint")
    assert status == 200
    # Each figure is published after the status write the phase wait saw: wait on the figure.
    wait_until(
        lambda: operator_process.metric("modelship_reconcile_duration_seconds_count") >= 1,
        timeout=15,
        what="a reconcile counted in modelship_reconcile_duration_seconds",
    )
    wait_until(
        lambda: operator_process.metric("modelship_model_deployments", 'phase="Building"') == 1,
        timeout=15,
        what='modelship_model_deployments{phase="Building"} == 1',
    )
    assert operator_process.metric("modelship_builds_total", 'outcome="started"') == 1


def test_operator_killed_mid_build_resumes_without_a_duplicate_job(
    models: Models, operator_process: OperatorProcess
) -> None:
    models.create("fraud", SPEC)
    (job,) = models.wait_jobs("fraud", 1)
    models.wait_phase("fraud", "Building")
    # Killed only once kopf has recorded the creation as handled: killed before that, the
    # restarted operator rightly treats the object as a creation, not a resume (a CI run hit
    # that window).
    wait_until(
        lambda: LAST_HANDLED in (models.get("fraud")["metadata"].get("annotations") or {}),
        timeout=30,
        what="kopf to record md/fraud's creation as handled",
    )
    operator_process.kill()

    operator_process.start()
    wait_until(
        lambda: operator_process.metric("modelship_reconcile_duration_seconds_count", "resume"),
        timeout=30,
        what="the restarted operator resuming md/fraud",
    )
    (again,) = models.jobs("fraud")
    assert again.metadata.uid == job.metadata.uid
    assert operator_process.metric("modelship_builds_total", 'outcome="started"') == 0

    # The restarted operator carries the revision on: the build finishes, it deploys.
    models.finish_job(job.metadata.name, succeeded=True)
    models.wait_phase("fraud", "Deploying")


def test_spec_changed_while_the_operator_was_down(
    models: Models, operator_process: OperatorProcess
) -> None:
    models.create("fraud", SPEC)
    (first,) = models.wait_jobs("fraud", 1)
    models.wait_phase("fraud", "Building")
    # Killed only once kopf has recorded the creation as handled: killed before that, the
    # restarted operator rightly treats the object as a creation, not a resume (a CI run hit
    # that window).
    wait_until(
        lambda: LAST_HANDLED in (models.get("fraud")["metadata"].get("annotations") or {}),
        timeout=30,
        what="kopf to record md/fraud's creation as handled",
    )
    operator_process.kill()
    models.patch_spec("fraud", {"model": {"uri": "s3://models/fraud/v2/model.onnx"}})
    operator_process.start()
    # The superseded build is stopped, the new one started, and nothing is duplicated.
    jobs = wait_until(
        lambda: (
            (jobs := models.jobs("fraud"))
            and len(jobs) == 1
            and jobs[0].metadata.uid != first.metadata.uid
            and jobs
        ),
        timeout=30,
        what="exactly one build Job, for the new revision",
    )
    status = models.wait_phase("fraud", "Building")
    assert (
        status["revisions"]["current"]["revision"]
        == jobs[0].metadata.labels["modelship.io/revision"]
    )
