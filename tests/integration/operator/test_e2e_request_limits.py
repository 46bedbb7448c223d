"""End to end on a real node: spec.runtime.requestLimits reach the serving pods, and changing
them rolls the current revision's pods in place, with no new build and no new revision."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, model_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SMALL = 1024  # bytes: the least a pod may be told to accept


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _answered(url: str, body: bytes, status: int) -> str | None:
    """The answer's text if the pod answered `status`."""
    got, text = _post(url, body)
    return text if got == status else None


def _rolled_out(models: Models, name: str, flag: str, value: str) -> bool:
    """Every pod of the Deployment runs the template whose server has `flag value`."""
    deployment = models.apps.read_namespaced_deployment(name, models.namespace)
    args = deployment.spec.template.spec.containers[0].args
    status = deployment.status
    return (
        args[args.index(flag) + 1] == value
        and (status.observed_generation or 0) >= deployment.metadata.generation
        and status.updated_replicas == deployment.spec.replicas
        and status.replicas == deployment.spec.replicas
        and status.ready_replicas == deployment.spec.replicas
    )


def test_request_limits_reach_the_pods_and_a_change_rolls_them_without_a_build(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    spec = {
        "model": {"uri": model_file(models.namespace, "limited", 1.0)},
        "runtime": {"requestLimits": {"maxRequestBytes": SMALL, "retryAfterSeconds": 2}},
    }
    models.create("limited", spec)
    revision = wait_until(lambda: models.ready_stable("limited"), timeout=300, what="Ready")
    service = models.core.read_namespaced_service("limited", models.namespace)
    url = f"http://{service.spec.cluster_ip}:8080/v2/models/limited/infer"
    rows = 64  # ~2 KiB of JSON: over SMALL
    data = [[1.0, 2.0, 3.0, 4.0]] * rows
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32", "data": data}]}
    ).encode()
    assert len(body) > SMALL

    # The refusal names the limit the spec set; the Service may need a moment after Ready.
    text = wait_until(
        lambda: _answered(url, body, 413),
        timeout=60,
        what="413 from the pod for a body over maxRequestBytes",
    )
    assert str(SMALL) in text, text
    jobs = [job.metadata.name for job in models.jobs("limited")]
    assert len(jobs) == 1, jobs

    models.patch_spec("limited", {"runtime": {"requestLimits": {"maxRequestBytes": 1 << 20}}})
    deployment = f"limited-{revision}"
    wait_until(
        lambda: _rolled_out(models, deployment, "--max-body-bytes", str(1 << 20)),
        timeout=180,
        what="the pods rolled with the new limit",
    )
    text = wait_until(
        lambda: _answered(url, body, 200),
        timeout=60,
        what="the same body accepted after the change",
    )
    assert len(json.loads(text)["outputs"][0]["data"]) == rows * 3
    # The same revision, rolled in place: no build, no second Deployment.
    assert wait_until(lambda: models.ready_stable("limited"), timeout=60, what="Ready") == revision
    assert [job.metadata.name for job in models.jobs("limited")] == jobs
    deployments = models.apps.list_namespaced_deployment(models.namespace).items
    assert [d.metadata.name for d in deployments] == [deployment]
    # The untouched limits kept their spec values (a patch merges), and the defaults stand.
    args = (
        models.apps.read_namespaced_deployment(deployment, models.namespace)
        .spec.template.spec.containers[0]
        .args
    )
    assert args[args.index("--retry-after-s") + 1] == "2"
    assert args[args.index("--max-in-flight") + 1] == "128"
