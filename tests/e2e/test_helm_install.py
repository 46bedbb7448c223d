"""The operator installed with `helm install charts/modelship`, as a platform team would on a
shared cluster: namespaced mode (its rights are a Role in the one namespace it watches), the
cluster's MinIO as the artifact store, its PodMonitor and alerts on. It serves a model end to
end; `helm uninstall` then leaves nothing of the release behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from tests.support import helm, json_http
from tests.support.cluster import Cluster
from tests.support.prometheus import Prometheus
from tests.support.store import MODEL_SECRET, STORE_SECRET, ObjectStore
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "modelship.io", "v1alpha1", "modeldeployments"
RELEASE_SELECTOR = "app.kubernetes.io/instance={release}"


def _release_objects(api_client: client.ApiClient, namespace: str, release: str) -> list[str]:
    """Every object of the release's kinds still carrying its instance label."""
    selector = RELEASE_SELECTOR.format(release=release)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    rbac, custom = client.RbacAuthorizationV1Api(api_client), client.CustomObjectsApi(api_client)
    found = [
        f"{kind}/{item.metadata.name}"
        for kind, listing in (
            ("Deployment", apps.list_namespaced_deployment),
            ("Pod", core.list_namespaced_pod),
            ("Service", core.list_namespaced_service),
            ("ServiceAccount", core.list_namespaced_service_account),
            ("ConfigMap", core.list_namespaced_config_map),
            ("Role", rbac.list_namespaced_role),
            ("RoleBinding", rbac.list_namespaced_role_binding),
        )
        for item in listing(namespace, label_selector=selector).items
    ]
    for plural in ("podmonitors", "prometheusrules"):
        listed = custom.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, plural, label_selector=selector
        )
        found += [f"{plural}/{item['metadata']['name']}" for item in listed["items"]]
    found += [
        f"ClusterRole/{item.metadata.name}"
        for item in rbac.list_cluster_role(label_selector=selector).items
    ]
    return found


def test_helm_install_serves_a_model_and_uninstall_removes_the_release(
    api_client: client.ApiClient, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    store = ObjectStore.from_endpoints()
    core = client.CoreV1Api(api_client)
    store.share(core, namespace)
    release = f"ms-{namespace[-6:]}"
    operator = f"{release}-operator"
    values = {
        "watchNamespaces": [namespace],
        "artifactStore": {"uri": store.artifact_store, "secretName": STORE_SECRET},
        "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }
    (tmp_path / "values.yaml").write_text(json.dumps(values))
    installed = helm.helm(
        "install", release, str(helm.CHART), "--namespace", namespace,
        "--values", str(tmp_path / "values.yaml"), "--wait", "--timeout", "4m",
        kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    uninstalled = False
    custom = client.CustomObjectsApi(api_client)
    try:
        listed = helm.helm(
            "list", "--namespace", namespace, "-o", "json", kubeconfig=cluster.kubeconfig
        )
        assert [(r["name"], r["status"]) for r in json.loads(listed.stdout)] == [
            (release, "deployed")
        ]
        # Namespaced mode: nothing cluster-wide was granted.
        rbac = client.RbacAuthorizationV1Api(api_client)
        assert rbac.read_namespaced_role(operator, namespace).rules
        assert not rbac.list_cluster_role(
            label_selector=f"app.kubernetes.io/instance={release}"
        ).items

        weights = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
        uri = store.upload_linear(namespace, "model", weights)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": "linear"},
                "spec": {"model": {"uri": uri, "credentialsSecret": MODEL_SECRET}, "replicas": 1},
            },
        )  # fmt: skip

        def ready() -> dict[str, Any] | None:
            md = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "linear")
            conditions = {c["type"]: c for c in md.get("status", {}).get("conditions", [])}
            ready = conditions.get("Ready", {})
            return md["status"] if ready.get("status") == "True" else None

        status = wait_until(
            ready, timeout=420, what="md/linear Ready under the Helm-installed operator"
        )
        assert status["build"]["state"] == "Succeeded"
        service = core.read_namespaced_service("linear", namespace)
        url = f"http://{service.spec.cluster_ip}:8080/v2/models/linear/infer"
        x = [[1.0, 2.0, 3.0]]
        request = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x}]}
        answer = wait_until(
            lambda: json_http.post(url, request),
            timeout=60,
            what="an inference through the Service",
        )
        got = np.asarray(answer["outputs"][0]["data"], dtype=np.float32).reshape(1, 2)
        np.testing.assert_allclose(got, np.asarray(x, dtype=np.float32) @ weights, rtol=1e-5)

        # The chart's PodMonitor is scraped under the job its alerts select.
        prometheus = Prometheus.from_endpoints()
        job = f"{namespace}/{operator}"
        wait_until(
            lambda: prometheus.query(f'up{{job="{job}"}} == 1'),
            timeout=180,
            what=f"Prometheus scraping the operator as job {job}",
        )
        wait_until(
            lambda: [
                rule
                for group in prometheus.rule_groups("alert")
                for rule in group["rules"]
                if rule["name"] == "ModelshipOperatorDown" and job in rule["query"]
            ],
            timeout=180,
            what=f"the operator's alerts loaded for job {job}",
        )
        # Least privilege held: the Role granted all the operator needed.
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={release}"
        )
        logs = core.read_namespaced_pod_log(pods.items[0].metadata.name, namespace)
        assert "forbidden" not in logs.lower(), logs[-3000:]

        # Models go first: the operator the release runs is the one that lets them go.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "linear")
        wait_until(
            lambda: (
                not custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            ),
            timeout=120,
            what="md/linear deleted",
        )
        removed = helm.helm(
            "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "2m",
            kubeconfig=cluster.kubeconfig,
        )  # fmt: skip
        uninstalled = removed.returncode == 0
        assert uninstalled, removed.stderr
        assert wait_until(
            lambda: not _release_objects(api_client, namespace, release),
            timeout=120,
            what=f"every object of release {release} gone",
        )
        listed = helm.helm(
            "list", "--namespace", namespace, "-o", "json", kubeconfig=cluster.kubeconfig
        )
        assert json.loads(listed.stdout) == []
        # Helm never deletes a CRD (its ModelDeployments everywhere would go with it).
        client.ApiextensionsV1Api(api_client).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    finally:
        if not uninstalled:
            helm.helm("uninstall", release, "--namespace", namespace, kubeconfig=cluster.kubeconfig)
