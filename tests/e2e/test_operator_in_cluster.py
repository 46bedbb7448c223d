"""The operator as users install it: its image, `manifests/` and nothing but the RBAC granted there.

The manifests are applied into the test's namespace with a name suffix for the cluster-scoped
objects, so the test neither needs nor disturbs an operator someone installed in the cluster.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from tests.support import operator_install
from tests.support.cluster import Cluster
from tests.support.store import MODEL_SECRET, ObjectStore
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "modelship.io", "v1alpha1", "modeldeployments"


def test_operator_image_with_manifest_rbac_serves_a_model(
    api_client: client.ApiClient,
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    installed = operator_install.install(cluster, namespace, tmp_path)
    base = installed.base()
    store = ObjectStore.from_endpoints()
    try:
        apps = client.AppsV1Api(api_client)
        operator = installed.deployment
        wait_until(
            lambda: (
                (
                    apps.read_namespaced_deployment_status(operator, namespace).status
                ).available_replicas
            ),
            timeout=180,
            what="the operator Deployment to be available",
        )

        weights = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
        uri = store.upload_linear(namespace, "model", weights)
        custom = client.CustomObjectsApi(api_client)
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": "linear"},
                "spec": {
                    "model": {"uri": uri, "credentialsSecret": MODEL_SECRET},
                    "replicas": 1,
                },
            },
        )
        operator_install.run(
            *base,
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            "md/linear",
            "--timeout=420s",
        )

        status: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "linear"
        )["status"]
        assert status["phase"] == "Ready"
        assert status["build"]["state"] == "Succeeded"
        service = client.CoreV1Api(api_client).read_namespaced_service("linear", namespace)
        url = f"http://{service.spec.cluster_ip}:8080/v2/models/linear/infer"
        x = [[1.0, 2.0, 3.0]]
        body = json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x}]}
        ).encode()

        def infer() -> dict[str, Any]:
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return dict(json.loads(response.read()))

        answer = wait_until(infer, timeout=60, what="an inference through the Service")
        got = np.asarray(answer["outputs"][0]["data"], dtype=np.float32).reshape(1, 2)
        np.testing.assert_allclose(got, np.asarray(x, dtype=np.float32) @ weights, rtol=1e-5)

        # Least privilege held: the operator needed nothing the manifests do not grant.
        logs = installed.logs()
        assert "forbidden" not in logs.lower(), logs[-3000:]
    finally:
        installed.uninstall()
