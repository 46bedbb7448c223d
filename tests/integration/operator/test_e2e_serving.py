"""End to end on a real node: build Job, served model, Ready, one inference via the Service."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.cluster import Cluster, kubectl
from tests.support.onnx_models import write_linear_onnx
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# The node is this machine: file:// URIs and the file:// artifact store are its host paths.
MODELS_ROOT = Path("/var/lib/modelship/e2e")


def test_model_is_built_served_and_answers_through_its_service(
    models: Models, cluster: Cluster, operator_environment: dict[str, str], tmp_path: Path
) -> None:
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    model_path = MODELS_ROOT / models.namespace / "model.onnx"
    write_linear_onnx(model_path, weights)
    env = {
        **operator_environment,
        # The real runtime image and the development artifact store (a hostPath).
        "MODELSHIP_RUNTIME_IMAGE": "docker.io/modelship/runtime:0.1.0",
        "MODELSHIP_ARTIFACT_STORE": "file:///var/lib/modelship/artifacts",
        "MODELSHIP_METRICS_PORT": str(free_port()),
    }
    operator = OperatorProcess(models.namespace, env, tmp_path / "operator.log")
    operator.start()
    try:
        models.create("linear", {"model": {"uri": f"file://{model_path}"}, "replicas": 1})

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
        model_path.unlink(missing_ok=True)
