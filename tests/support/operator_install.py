"""The operator installed as users install it (its image, `manifests/`), confined to one test
namespace: cluster-scoped objects get a name suffix, the operator watches only that namespace,
so a test neither needs nor disturbs an operator someone else installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.support.cluster import REPO, Cluster, kubectl
from tests.support.store import STORE_SECRET, ObjectStore


@dataclass(frozen=True)
class InstalledOperator:
    """An operator installed into a test namespace."""

    cluster: Cluster
    namespace: str
    suffix: str

    @property
    def deployment(self) -> str:
        return f"modelship-operator{self.suffix}"

    @property
    def prometheus_job(self) -> str:
        """The job label Prometheus gives the operator's PodMonitor (<namespace>/<name>)."""
        return f"{self.namespace}/modelship-operator{self.suffix}"

    def logs(self) -> str:
        return run(*self.base(), "-n", self.namespace, "logs", f"deployment/{self.deployment}")

    def base(self) -> list[str]:
        return [kubectl(), "--kubeconfig", self.cluster.kubeconfig]

    def uninstall(self) -> None:
        """Removes the cluster-scoped objects (the namespace's own go with the namespace)."""
        for kind in ("clusterrolebinding", "clusterrole"):
            subprocess.run(
                [*self.base(), "delete", kind, self.deployment, "--ignore-not-found"],
                capture_output=True,
                check=False,
                timeout=60,
            )


def run(*args: str, stdin: str | None = None) -> str:
    """A command that must succeed; its stderr in the assertion message otherwise."""
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"{' '.join(args[:4])}…: {result.stderr}"
    return result.stdout


def install(
    cluster: Cluster,
    namespace: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    pod_monitor: bool = False,
) -> InstalledOperator:
    """Renders manifests/ (RBAC + Deployment, and the operator's PodMonitor when asked) into
    `namespace` and applies it server-side. The namespace is made what a shared cluster's is:
    `restricted` Pod Security enforced (the operator and every pod it makes run under it), the
    store's and the models' keys in their Secrets; the store is the cluster's MinIO."""
    store = ObjectStore.from_endpoints()
    with config.new_client_from_config(config_file=cluster.kubeconfig) as api_client:
        store.share(client.CoreV1Api(api_client), namespace)
    suffix = f"-{namespace[-6:]}"
    resources = ["rbac.yaml", "deployment.yaml"]
    for name in resources:
        shutil.copy(REPO / "manifests" / name, workdir / name)
    # Merged by name over the manifest's env (a strategic merge patch): the manifest's own
    # production settings with this cluster's bucket, the test namespace, the caller's own.
    extra_env = {
        "MODELSHIP_ARTIFACT_STORE": store.artifact_store,
        "MODELSHIP_ARTIFACT_STORE_SECRET": STORE_SECRET,
        "MODELSHIP_NAMESPACES": namespace,
        **(env or {}),
    }
    container = {"name": "operator", "env": [{"name": k, "value": v} for k, v in extra_env.items()]}
    patches: list[dict[str, Any]] = [
        {
            "target": {"kind": "Deployment", "name": "modelship-operator"},
            "patch": json.dumps(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "modelship-operator"},
                    "spec": {"template": {"spec": {"containers": [container]}}},
                }
            ),
        }
    ]
    if pod_monitor:
        shutil.copy(REPO / "manifests" / "monitoring" / "podmonitor.yaml", workdir)
        resources.append("podmonitor.yaml")
        patches.append(
            {
                "target": {"kind": "PodMonitor", "name": "modelship-operator"},
                "patch": json.dumps(
                    [
                        {
                            "op": "replace",
                            "path": "/spec/namespaceSelector/matchNames",
                            "value": [namespace],
                        }
                    ]
                ),
            }
        )
    (workdir / "kustomization.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "nameSuffix": suffix,
                "resources": resources,
                "patches": patches,
            }
        )
    )
    installed = InstalledOperator(cluster, namespace, suffix)
    base = installed.base()
    run(*base, "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    run(*base, "wait", "--for=condition=Established", "crd/modeldeployments.modelship.io")
    rendered = run(*base, "kustomize", str(workdir))
    run(*base, "apply", "--server-side", "-f", "-", stdin=rendered)
    return installed
