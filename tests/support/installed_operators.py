"""Operators installed in the cluster by someone else (`make demo`, a developer), set aside
while the suite runs and restored afterwards.

A cluster-wide modelship operator would reconcile the tests' ModelDeployments alongside the
operator each test starts, so neither would be the one under test. The suite scales every
installed operator Deployment to zero for its duration, waits until its pods are gone, and
puts the replica count back at the end. The count is recorded on the Deployment itself (an
annotation), so a session killed before it could restore leaves the next one (or a reader with
kubectl) what to put back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.support.waiting import wait_until

OPERATOR_SELECTOR = "app.kubernetes.io/name=modelship-operator"
SET_ASIDE_ANNOTATION = "modelship.io/set-aside-replicas"


@dataclass(frozen=True)
class SetAside:
    """One operator Deployment scaled to zero, and the replicas it had."""

    namespace: str
    name: str
    replicas: int


def set_aside(api_client: client.ApiClient, timeout: float = 120) -> list[SetAside]:
    """Scales every installed operator to zero and waits until none of its pods remains."""
    apps: Any = client.AppsV1Api(api_client)
    found = apps.list_deployment_for_all_namespaces(label_selector=OPERATOR_SELECTOR).items
    aside: list[SetAside] = []
    for deployment in found:
        meta = deployment.metadata
        recorded = (meta.annotations or {}).get(SET_ASIDE_ANNOTATION)
        # A recorded count wins: it is what the operator had before an interrupted session.
        replicas = int(recorded) if recorded is not None else int(deployment.spec.replicas or 0)
        if replicas == 0 and recorded is None:
            continue
        apps.patch_namespaced_deployment(
            meta.name,
            meta.namespace,
            {
                "metadata": {"annotations": {SET_ASIDE_ANNOTATION: str(replicas)}},
                "spec": {"replicas": 0},
            },
        )
        aside.append(SetAside(meta.namespace, meta.name, replicas))
    core: Any = client.CoreV1Api(api_client)
    for item in aside:
        # A terminating kopf pod still handles events until it exits: wait for it to be gone.
        wait_until(
            lambda item=item: (
                not core.list_namespaced_pod(item.namespace, label_selector=OPERATOR_SELECTOR).items
            ),
            timeout=timeout,
            what=f"the pods of the installed operator {item.namespace}/{item.name} to stop",
        )
    return aside


def restore(api_client: client.ApiClient, aside: list[SetAside]) -> None:
    """Gives each set-aside operator its replicas back and drops the annotation."""
    apps: Any = client.AppsV1Api(api_client)
    for item in aside:
        try:
            apps.patch_namespaced_deployment(
                item.name,
                item.namespace,
                {
                    "metadata": {"annotations": {SET_ASIDE_ANNOTATION: None}},
                    "spec": {"replicas": item.replicas},
                },
            )
        except client.ApiException as exc:
            if exc.status != 404:  # uninstalled meanwhile: nothing to restore
                raise


def describe(aside: list[SetAside]) -> str:
    """One line for the test log: what was set aside."""
    if not aside:
        return "no installed modelship operator found in the cluster"
    names = ", ".join(f"{a.namespace}/{a.name} ({a.replicas} replica(s))" for a in aside)
    return f"installed modelship operator(s) set aside for the suite, restored after it: {names}"
