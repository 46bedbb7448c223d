"""The local control plane is a real Kubernetes: objects round-trip and watches deliver events."""

from __future__ import annotations

import threading
import uuid

import pytest
from kubernetes import client, watch

from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_configmap_created_is_seen_through_a_watch(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    name = f"cm-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[str, dict[str, str]]] = []
    listed = core.list_namespaced_config_map(namespace)
    stream = watch.Watch()

    def follow() -> None:
        for event in stream.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        ):
            obj = event["object"]
            if obj.metadata.name == name:
                seen.append((event["type"], dict(obj.data or {})))
                if event["type"] == "MODIFIED":
                    stream.stop()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"model": "v1"}),
    )
    core.patch_namespaced_config_map(name, namespace, {"data": {"model": "v2"}})

    wait_until(lambda: len(seen) >= 2, timeout=30, what="ADDED and MODIFIED watch events")
    watcher.join(timeout=5)
    assert seen[0] == ("ADDED", {"model": "v1"})
    assert seen[1] == ("MODIFIED", {"model": "v2"})


def test_server_is_kubernetes_1_33(api_client: client.ApiClient) -> None:
    info = client.VersionApi(api_client).get_code()
    assert info.major == "1"
    assert info.minor == "33"
    assert info.git_version.startswith("v1.33.")


def test_every_readyz_check_passes(api_client: client.ApiClient) -> None:
    host = api_client.configuration.host
    response = api_client.rest_client.request("GET", f"{host}/readyz?verbose")
    body = response.read().decode()
    assert response.status == 200
    checks = [line for line in body.splitlines() if line.startswith("[")]
    assert len(checks) > 10, body
    failing = [line for line in checks if not line.startswith("[+]")]
    assert not failing, failing


def test_controller_manager_and_scheduler_report_healthy(api_client: client.ApiClient) -> None:
    statuses = client.CoreV1Api(api_client).list_component_status().items
    health = {
        item.metadata.name: [c.status for c in item.conditions if c.type == "Healthy"]
        for item in statuses
    }
    assert health.get("controller-manager") == ["True"], health
    assert health.get("scheduler") == ["True"], health
