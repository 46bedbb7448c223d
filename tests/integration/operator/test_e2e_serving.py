"""End to end on a real node: build Job, served model, Ready, one inference via the Service."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelship import naming

from tests.support.cluster import Cluster, kubectl
from tests.support.health_fixtures import capture
from tests.support.store import MODEL_SECRET, STORE_SECRET, ObjectStore
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, free_port, serving_env, serving_namespace

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _secrets_of(container: Any, volumes: dict[str, str]) -> set[str]:
    """The Secrets a container holds: by envFrom, or by a mounted Secret volume."""
    by_env = {e.secret_ref.name for e in container.env_from or [] if e.secret_ref}
    by_file = {volumes[m.name] for m in container.volume_mounts or [] if m.name in volumes}
    return by_env | by_file


def _keys_reached_only_their_own_containers(models: Models, revision: str) -> None:
    """The pods that ran: the build step held the model's keys and nothing else, the publish
    and the fetch the store's and nothing else (the build read the model from the store and the
    publish wrote it there, so each had what it needed)."""
    job = naming.build_job_name("linear", revision)
    build_pods = models.core.list_namespaced_pod(
        models.namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    ).items
    assert build_pods
    selector = ",".join(f"{k}={v}" for k, v in naming.server_selector("linear").items())
    serving_pods = models.core.list_namespaced_pod(models.namespace, label_selector=selector).items
    for pod in [*build_pods, *serving_pods]:
        volumes = {v.name: v.secret.secret_name for v in pod.spec.volumes if v.secret}
        volumes.pop("feedback-key", None)  # the server's signing key, not a store's
        held = {
            c.name: _secrets_of(c, volumes) for c in pod.spec.init_containers + pod.spec.containers
        }
        assert held in (
            {"build": {MODEL_SECRET}, "publish": {STORE_SECRET}},
            {"fetch": {STORE_SECRET}, "server": set()},
        ), held


def test_model_is_built_served_and_answers_through_its_service(
    models: Models, cluster: Cluster, operator_environment: dict[str, str], tmp_path: Path
) -> None:
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    uri = ObjectStore.from_endpoints().upload_linear(models.namespace, "model", weights)
    # A namespace enforcing `restricted`, an S3 store, production mode: no host path at all.
    serving_namespace(models)
    env = {**operator_environment, **serving_env(), "MODELSHIP_METRICS_PORT": str(free_port())}
    operator = OperatorProcess(models.namespace, env, tmp_path / "operator.log")
    operator.start()
    try:
        models.create("linear", {"model": {"uri": uri}, "replicas": 1})

        # Fail fast (with the build's own words) instead of waiting out kubectl's timeout.
        def settled_status() -> dict[str, Any] | None:
            status = models.status("linear")
            return status if status.get("phase") in ("Deploying", "Ready", "Failed") else None

        settled = wait_until(settled_status, timeout=300, what="md/linear built (or failed)")
        assert settled["phase"] != "Failed", (settled.get("build"), operator.output())
        result = subprocess.run(
            [
                kubectl(),
                "--kubeconfig",
                cluster.kubeconfig,
                "-n",
                models.namespace,
                "wait",
                "--for=condition=Ready",
                "md/linear",
                "--timeout=300s",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (result.stderr, models.status("linear"), operator.output())
        status = models.status("linear")
        assert status["phase"] == "Ready" and status["readyReplicas"] == 1
        assert (
            status["revisions"]["stable"]["revision"] == status["revisions"]["current"]["revision"]
        )
        assert status["build"]["state"] == "Succeeded"
        capture("serving", models.get("linear"))
        _keys_reached_only_their_own_containers(models, status["revisions"]["current"]["revision"])

        service = models.core.read_namespaced_service("linear", models.namespace)
        url = f"http://{service.spec.cluster_ip}:8080/v2/models/linear/infer"
        x = [[1.0, 2.0, 3.0, 4.0]]
        request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x}]}

        def infer() -> dict[str, Any]:
            req = urllib.request.Request(
                url, data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as response:
                return dict(json.loads(response.read()))

        answer = wait_until(infer, timeout=60, what="an inference through the Service")
        (output,) = answer["outputs"]
        got = np.asarray(output["data"], dtype=np.float32).reshape(1, 3)
        np.testing.assert_allclose(got, np.asarray(x, dtype=np.float32) @ weights, rtol=1e-5)
        print(f"inference through {url}: {got.tolist()}")

        # A serving model whose spec and children did not change costs no write: two periodic
        # resyncs (MODELSHIP_RESYNC_SECONDS) re-reconcile it and must find nothing to apply.
        writes = operator.api_writes()
        resyncs = operator.metric("modelship_reconcile_duration_seconds_count", 'trigger="resync"')
        wait_until(
            lambda: (
                operator.metric("modelship_reconcile_duration_seconds_count", 'trigger="resync"')
                >= resyncs + 2
            ),
            timeout=90,
            what="two resyncs of the serving model",
        )
        assert operator.api_writes() == writes, operator.metric("modelship_api_requests_total")
    finally:
        operator.stop()
