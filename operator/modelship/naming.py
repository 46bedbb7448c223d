"""Deterministic names, labels and addresses of a ModelDeployment's children, and the identity
of one revision (computed once, handed to every builder of its children)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelship import api

MANAGED_BY = "modelship-operator"
PART_OF = "modelship"
REVISION_LABEL = "modelship.io/revision"
REVISION_ANNOTATION = "modelship.io/revision"
# Names the Deployment a serving pod belongs to: pods of the single-Deployment layout carry the
# revision label too, and a Service selecting a revision must not reach them while they drain.
DEPLOYMENT_LABEL = "modelship.io/deployment"
# On the model's Service: its stable revision (during a canary its selector spans two).
STABLE_ANNOTATION = "modelship.io/stable-revision"
# On a serving Deployment: the sha256 its fetch requires of the model file (recorded by the
# build), so a revision keeps its pin after its build Job and status moved on.
DIGEST_ANNOTATION = "modelship.io/artifact-sha256"
HTTP_PORT = 8080
GRPC_PORT = 8081


def build_job_name(md_name: str, revision: str) -> str:
    """Name the build Job of a revision."""
    return f"{md_name}-build-{revision}"


def legacy_deployment_name(md_name: str) -> str:
    """Name of the single serving Deployment of operators before per-revision Deployments
    (read only to migrate it away)."""
    return md_name


def revision_name(md_name: str, revision: str) -> str:
    """Name a revision's Deployment and Service (at most 45 + 1 + 10 = 56 characters)."""
    return f"{md_name}-{revision}"


def service_name(md_name: str) -> str:
    """Name the model's Service: the entry point users call, selecting the stable revision."""
    return md_name


def route_name(md_name: str) -> str:
    """Name the model's HTTPRoute and GRPCRoute (gatewayAPI router)."""
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


@dataclass(frozen=True)
class RevisionIdentity:
    """Names, labels, selector and owner of one revision's serving children."""

    md_name: str
    namespace: str
    revision: str
    owner: dict[str, object] = field(compare=False)

    @classmethod
    def of(cls, md: api.ModelDeployment, revision: str) -> RevisionIdentity:
        """The identity of a revision of a ModelDeployment."""
        return cls(md.name, md.namespace, revision, owner_reference(md))

    @property
    def name(self) -> str:
        """The revision's Deployment and Service."""
        return revision_name(self.md_name, self.revision)

    @property
    def selector(self) -> dict[str, str]:
        """Selects this revision's pods only."""
        return {
            **server_selector(self.md_name),
            REVISION_LABEL: self.revision,
            DEPLOYMENT_LABEL: self.name,
        }

    @property
    def labels(self) -> dict[str, str]:
        """Labels of the revision's Deployment, Service and pods."""
        return {**common_labels(self.md_name, "server"), **self.selector}


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether a child names the object of `uid` among its owners."""
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
