"""The metrics plane: the cluster's Prometheus scrapes what a PodMonitor selects in any
namespace and evaluates any namespace's PrometheusRules (prometheus-operator wires both)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.diagnostics import describe_namespace
from tests.support.images import RUNTIME_IMAGE
from tests.support.prometheus import Prometheus
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION = "monitoring.coreos.com", "v1"
# A new PodMonitor or PrometheusRule reaches Prometheus through a Secret or ConfigMap volume,
# which the kubelet refreshes on its pod sync (about a minute), then a config reload.
PICKUP_TIMEOUT = 300
ALERT = "ModelshipE2EAlwaysFiring"
POD = "identity"
POD_LABELS = {"app.kubernetes.io/name": "identity"}

# An Identity model written with onnx.helper inside the pod: the test needs only the image.
MAKE_MODEL = (
    "import onnx, onnx.helper as h; from onnx import TensorProto as T;"
    "g = h.make_graph([h.make_node('Identity', ['x'], ['y'])], 'identity',"
    " [h.make_tensor_value_info('x', T.FLOAT, [None, 2])],"
    " [h.make_tensor_value_info('y', T.FLOAT, [None, 2])]);"
    "onnx.save(h.make_model(g, ir_version=10, opset_imports=[h.make_opsetid('', 17)]),"
    " '/models/identity.onnx')"
)


@pytest.fixture(scope="module")
def prometheus(cluster: object) -> Prometheus:
    prom = Prometheus.from_endpoints()
    wait_until(prom.ready, timeout=60, what=f"{prom.url}/-/ready")
    return prom


@pytest.fixture(scope="module")
def monitored(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace holding a serving pod, a PodMonitor selecting it and a PrometheusRule.

    Created together: both reach Prometheus through volumes that the kubelet refreshes on
    the same pod sync, so the module waits for that minute once, not once per test.
    """
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    name = f"t-prometheus-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    failed_before = request.session.testsfailed
    try:
        wait_until(
            lambda: core.list_namespaced_service_account(name).items,
            timeout=30,
            what=f"default ServiceAccount in {name}",
        )
        core.create_namespaced_pod(name, _serving_pod(POD, POD_LABELS))
        custom.create_namespaced_custom_object(GROUP, VERSION, name, "podmonitors", _pod_monitor())
        custom.create_namespaced_custom_object(
            GROUP, VERSION, name, "prometheusrules", _always_firing_rule(name)
        )
        yield name
    finally:
        if request.session.testsfailed > failed_before:
            print(describe_namespace(api_client, name))
        # The PodMonitor and the PrometheusRule go with the namespace.
        core.delete_namespace(name)


def _pod_monitor() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PodMonitor",
        "metadata": {"name": POD},
        "spec": {
            "selector": {"matchLabels": POD_LABELS},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
        },
    }


def _always_firing_rule(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PrometheusRule",
        "metadata": {"name": "always-firing"},
        "spec": {
            "groups": [
                {
                    "name": "e2e",
                    "rules": [
                        {
                            "alert": ALERT,
                            "expr": "vector(1)",
                            "labels": {"namespace": namespace, "severity": "none"},
                            "annotations": {"summary": "fires as soon as it is evaluated"},
                        }
                    ],
                }
            ]
        },
    }


def _serving_pod(name: str, labels: dict[str, str]) -> client.V1Pod:
    serve = client.V1Container(
        name="serve",
        image=RUNTIME_IMAGE,
        image_pull_policy="IfNotPresent",
        command=[
            "sh",
            "-c",
            f'python3 -c "{MAKE_MODEL}" && exec modelship-runtime serve '
            "--model /models/identity.onnx --name identity --http-port 8080",
        ],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/v2/health/ready", port=8080),
            period_seconds=1,
        ),
        volume_mounts=[client.V1VolumeMount(name="models", mount_path="/models")],
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=1,
            containers=[serve],
            volumes=[client.V1Volume(name="models", empty_dir={})],
        ),
    )


def _pod_ready(core: client.CoreV1Api, name: str, namespace: str) -> bool:
    status = core.read_namespaced_pod_status(name, namespace).status
    conditions = (status.conditions if status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def test_pod_monitor_target_is_scraped_and_its_series_carry_the_namespace(
    api_client: client.ApiClient, monitored: str, prometheus: Prometheus
) -> None:
    core = client.CoreV1Api(api_client)
    namespace = monitored
    wait_until(
        lambda: _pod_ready(core, POD, namespace), timeout=300, what="the serving pod to be Ready"
    )

    def healthy_target() -> dict[str, Any] | None:
        for target in prometheus.targets():
            target_labels = target["labels"]
            if (
                target_labels.get("namespace") == namespace
                and target_labels.get("pod") == POD
                and target["health"] == "up"
            ):
                return target
        return None

    target = wait_until(
        healthy_target,
        timeout=PICKUP_TIMEOUT,
        what=f"a healthy scrape target for pod {namespace}/{POD}",
    )
    assert target["scrapeUrl"].endswith(":8080/metrics")
    assert target["labels"]["job"] == f"{namespace}/{POD}"

    samples = wait_until(
        lambda: prometheus.query(f'modelship_ready{{namespace="{namespace}", pod="{POD}"}}'),
        timeout=60,
        what=f"a modelship_ready series from {namespace}/{POD}",
    )
    assert len(samples) == 1
    assert samples[0]["metric"]["namespace"] == namespace
    assert float(samples[0]["value"][1]) == 1.0


def test_prometheus_rule_is_loaded_and_its_alert_fires(
    monitored: str, prometheus: Prometheus
) -> None:
    namespace, alert = monitored, ALERT

    def loaded_rule() -> dict[str, Any] | None:
        for group in prometheus.rule_groups("alert"):
            rules: list[dict[str, Any]] = group["rules"]
            for rule in rules:
                if rule["name"] == alert and rule["labels"].get("namespace") == namespace:
                    return rule
        return None

    rule = wait_until(
        loaded_rule, timeout=PICKUP_TIMEOUT, what=f"alerting rule {alert} of {namespace} loaded"
    )
    assert rule["health"] in ("ok", "unknown"), rule
    assert rule["query"] == "vector(1)"

    def firing() -> dict[str, Any] | None:
        for active in prometheus.alerts():
            active_labels = active["labels"]
            if (
                active_labels.get("alertname") == alert
                and active_labels.get("namespace") == namespace
                and active["state"] == "firing"
            ):
                return active
        return None

    fired = wait_until(firing, timeout=60, what=f"alert {alert} of {namespace} firing")
    assert fired["annotations"]["summary"] == "fires as soon as it is evaluated"

    def rule_firing() -> dict[str, Any] | None:
        current = loaded_rule()
        if current is None or current["state"] != "firing":
            return None
        return current

    rule = wait_until(rule_firing, timeout=30, what=f"/api/v1/rules to show {alert} firing")
    assert rule["health"] == "ok"
