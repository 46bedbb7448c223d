"""End to end on a real node: the serving pods fetch only the model file the build recorded.
A build swapped in the store afterwards (model and manifest alike, so it is consistent in itself)
is refused by the pods that fetch it, the ModelDeployment says so with both digests, and the pod
that fetched the original keeps serving."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from modelship import naming

from tests.support.store import ObjectStore
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, model_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _swap_the_model(store: ObjectStore, build: str) -> str:
    """Replace the selected model file of a published build and list its digest in the
    manifest, as someone with write access to the store could; returns the forged digest."""
    manifest = json.loads(store.read(f"{build}/manifest.json"))
    swapped = b"a model nobody built"
    store.upload(f"{build}/{manifest['selectedFile']}", swapped)
    forged = hashlib.sha256(swapped).hexdigest()
    for variant in manifest["variants"]:
        if variant["selected"]:
            variant["sha256"] = forged
    store.upload(f"{build}/manifest.json", json.dumps(manifest).encode())
    return forged


def test_a_build_swapped_in_the_store_is_not_served(
    models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    models.create("pinned", {"model": {"uri": model_file(models.namespace, "pinned", 1.0)}})
    revision = wait_until(lambda: models.ready_stable("pinned"), timeout=300, what="Ready")
    recorded = models.status("pinned")["revisions"]["stable"]["digest"]
    assert recorded and len(recorded) == 64
    deployment = models.apps.read_namespaced_deployment(f"pinned-{revision}", models.namespace)
    assert deployment.metadata.annotations[naming.DIGEST_ANNOTATION] == recorded
    (fetch,) = deployment.spec.template.spec.init_containers
    assert fetch.args[fetch.args.index("--model-sha256") + 1] == recorded

    store = ObjectStore.from_endpoints()
    forged = _swap_the_model(store, f"builds/{models.namespace}/pinned/{revision}")
    models.patch_spec("pinned", {"replicas": 2})

    def refused() -> dict[str, Any] | None:
        status = models.status("pinned")
        degraded = next(c for c in status.get("conditions", []) if c["type"] == "Degraded")
        return status if recorded in degraded["message"] and forged in degraded["message"] else None

    status = wait_until(refused, timeout=120, what="the new pod's refusal in status")
    assert status["phase"] == "Degraded" and status["readyReplicas"] == 1, status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready  # the pod that fetched the original still serves
