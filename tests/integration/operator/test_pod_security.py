"""Every pod modelship makes passes the restricted Pod Security Standard of a real apiserver:
its PodSecurity admission judges a server-side dry run of each pod in a namespace that enforces
`restricted`. The build Job's and the serving pods' templates (S3 store, a model with its own
credentials) and the operator's own Deployment from manifests/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelship import api, naming, render
from modelship.settings import OperatorSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ENFORCE = "pod-security.kubernetes.io/enforce"


@pytest.fixture
def restricted(api_client: client.ApiClient, namespace: str) -> client.CoreV1Api:
    core = client.CoreV1Api(api_client)
    labels = {ENFORCE: "restricted", f"{ENFORCE}-version": "latest"}
    core.patch_namespace(namespace, {"metadata": {"labels": labels}})
    return core


def _refusal(core: client.CoreV1Api, namespace: str, spec: dict[str, Any]) -> str | None:
    """Why the apiserver refuses a pod with this spec (None: admitted). Nothing is created."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "pss-"}, "spec": spec}
    try:
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    except ApiException as exc:
        return f"{exc.status}: {exc.body}"
    return None


def _md(namespace: str, spec: dict[str, Any]) -> api.ModelDeployment:
    meta = {"name": "fraud", "namespace": namespace, "uid": "uid-1", "generation": 1}
    return api.ModelDeployment.from_body({"metadata": meta, "spec": spec})


def test_the_operators_pods_are_admitted_where_restricted_is_enforced(
    restricted: client.CoreV1Api, namespace: str
) -> None:
    settings = OperatorSettings(
        artifact_store="s3://store/builds", artifact_store_secret="modelship-artifact-store"
    )
    md = _md(
        namespace,
        {
            "model": {"uri": "s3://models/fraud/model.onnx", "credentialsSecret": "model-creds"},
            "optimization": {"validation": {"dataset": "s3://models/fraud/golden.npz"}},
        },
    )
    identity = naming.RevisionIdentity.of(md, "r1")
    pods = {
        "build Job": render.render_build_job(md, "r1", settings),
        "serving Deployment": render.render_deployment(md, identity, settings, 1, digest="ab" * 32),
    }
    for what, obj in pods.items():
        assert _refusal(restricted, namespace, obj["spec"]["template"]["spec"]) is None, what

    (operator,) = [
        doc
        for doc in yaml.safe_load_all((REPO / "manifests" / "deployment.yaml").read_text())
        if doc and doc["kind"] == "Deployment"
    ]
    pod = operator["spec"]["template"]["spec"]
    pod["serviceAccountName"] = "default"  # its own comes with rbac.yaml; Pod Security ignores it
    assert _refusal(restricted, namespace, pod) is None
    namespace_doc = yaml.safe_load((REPO / "manifests" / "namespace.yaml").read_text())
    assert namespace_doc["metadata"]["labels"][ENFORCE] == "restricted"


def test_the_namespace_does_enforce_it_a_development_store_is_refused(
    restricted: client.CoreV1Api, namespace: str
) -> None:
    # The control: a hostPath (development mode's file:// store) is not allowed by restricted.
    dev = OperatorSettings(development=True, artifact_store="file:///var/lib/modelship/artifacts")
    job = render.render_build_job(
        _md(namespace, {"model": {"uri": "s3://m/model.onnx"}}), "r1", dev
    )
    refusal = _refusal(restricted, namespace, job["spec"]["template"]["spec"])
    assert refusal is not None and refusal.startswith("403") and "hostPath" in refusal, refusal
