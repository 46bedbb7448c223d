"""Deterministic names, labels and addresses of a ModelDeployment's children."""

from __future__ import annotations

from modelship import api

MANAGED_BY = "modelship-operator"
PART_OF = "modelship"
REVISION_LABEL = "modelship.io/revision"
REVISION_ANNOTATION = "modelship.io/revision"
HTTP_PORT = 8080
GRPC_PORT = 8081


def build_job_name(md_name: str, revision: str) -> str:
    """Name the build Job of a revision."""
    return f"{md_name}-build-{revision}"


def deployment_name(md_name: str) -> str:
    """Name the serving Deployment (one per ModelDeployment; revisions roll through it)."""
    return md_name


def service_name(md_name: str) -> str:
    """Name the model's Service."""
    return md_name


def monitoring_name(md_name: str) -> str:
    """Name the PodMonitor and PrometheusRule (the Prometheus job becomes <namespace>/<name>)."""
    return md_name


def dashboard_name(md_name: str) -> str:
    """Name the dashboard ConfigMap."""
    return f"{md_name}-dashboard"


def feedback_key_name(md_name: str) -> str:
    """Name the Secret holding the key that signs prediction tokens (one per ModelDeployment)."""
    return f"{md_name}-feedback-key"


def common_labels(md_name: str, component: str) -> dict[str, str]:
    """Labels every child carries (app.kubernetes.io/* recommended labels)."""
    return {
        "app.kubernetes.io/name": "modelship-model",
        "app.kubernetes.io/instance": md_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def server_selector(md_name: str) -> dict[str, str]:
    """Labels selecting the serving pods of a ModelDeployment."""
    return {"app.kubernetes.io/instance": md_name, "app.kubernetes.io/component": "server"}


def selector_string(labels: dict[str, str]) -> str:
    """Render a label selector as the scale subresource expects it."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def artifact_uri(store: str, namespace: str, md_name: str, revision: str) -> str:
    """Where the build of a revision is published (a directory with manifest.json)."""
    return f"{store}/{namespace}/{md_name}/{revision}/"


def model_url(md_name: str, namespace: str) -> str:
    """In-cluster inference URL of the model (Open Inference Protocol v2)."""
    return f"http://{service_name(md_name)}.{namespace}.svc:{HTTP_PORT}/v2/models/{md_name}"


def owner_reference(md: api.ModelDeployment) -> dict[str, object]:
    """The ownerReference that makes a child garbage-collected with its ModelDeployment."""
    return {
        "apiVersion": f"{api.GROUP}/{api.VERSION}",
        "kind": api.KIND,
        "name": md.name,
        "uid": md.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
