"""The metrics plane end to end: a served model with spec.monitoring on is scraped by the real
Prometheus through the PodMonitor the operator created (turned into scrape config by the real
prometheus-operator), its PrometheusRule is loaded, and an alert fires when the SLO is broken."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from tests.e2e.test_dashboards_live import check_dashboards_live
from tests.support import operator_install
from tests.support.cluster import Cluster
from tests.support.prometheus import Prometheus
from tests.support.store import MODEL_SECRET, ObjectStore
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
GROUP, VERSION, PLURAL = "modelship.io", "v1alpha1", "modeldeployments"

WEIGHTS = (np.arange(12, dtype=np.float32).reshape(4, 3) % 5 - 2) / 3
PREDICTIONS = 40
CORRECT = 30  # labels agreeing with the model: true accuracy 30/40 = 0.75


@dataclass(frozen=True)
class Served:
    custom: Any
    core: Any
    namespace: str
    url: str
    operator: operator_install.InstalledOperator

    def md(self) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, "linear"
        )
        return result


@pytest.fixture
def served(
    api_client: client.ApiClient, cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[Served]:
    """md/linear built and Ready, served by the operator installed from manifests/ (its image,
    its RBAC, its PodMonitor), with every monitoring object on and a short SLO window."""
    installed = operator_install.install(cluster, namespace, tmp_path, pod_monitor=True)
    uri = ObjectStore.from_endpoints().upload_linear(namespace, "model", WEIGHTS)
    custom: Any = client.CustomObjectsApi(api_client)
    core: Any = client.CoreV1Api(api_client)
    try:
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
                    "monitoring": {
                        "podMonitor": True,
                        "rules": True,
                        "dashboard": True,
                        # Short windows so the accuracy alert can fire within the deadline.
                        "slo": {
                            "minAccuracy": 0.9,
                            "minLabelledSamples": 20,
                            "window": "20s",
                            "pending": "10s",
                        },
                    },
                },
            },
        )
        served = Served(custom, core, namespace, "", installed)
        status = wait_until(
            lambda: (
                (s := served.md().get("status") or {}).get("phase") in ("Ready", "Failed") and s
            ),
            timeout=420,
            what="md/linear Ready (or Failed)",
        )
        assert status["phase"] == "Ready", (status, installed.logs()[-3000:])
        service = core.read_namespaced_service("linear", namespace)
        url = f"http://{service.spec.cluster_ip}:8080/v2/models/linear"
        yield Served(custom, core, namespace, url, installed)
        assert "forbidden" not in installed.logs().lower()
    finally:
        installed.uninstall()


def _post(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _value(result: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"].get("revision", ""): float(s["value"][1]) for s in result}


def test_prometheus_scrapes_the_model_and_its_alerts_fire(served: Served) -> None:
    ns = served.namespace
    status = served.md()["status"]
    revision = status["revisions"]["current"]["revision"]
    assert status["monitoring"] == {
        "podMonitor": "linear",
        "prometheusRule": "linear",
        "dashboard": "linear-dashboard",
    }
    condition = next(c for c in status["conditions"] if c["type"] == "Monitoring")
    assert (condition["status"], condition["reason"]) == (
        "True",
        "Applied",
    ), condition
    dashboard = served.core.read_namespaced_config_map("linear-dashboard", ns)
    assert dashboard.metadata.labels["grafana_dashboard"] == "1"

    prometheus = Prometheus.from_endpoints()
    # The PodMonitor became a scrape pool (prometheus-operator) that found the pod and scraped it.
    wait_until(
        lambda: any(
            t["labels"].get("namespace") == ns and t["health"] == "up"
            for t in prometheus.targets()
            if t.get("scrapePool", "").startswith(f"podMonitor/{ns}/linear/")
        ),
        timeout=180,
        what=f"a healthy scrape target of podMonitor/{ns}/linear",
    )
    # The rules are loaded before any label arrives, so the accuracy alert sees them all.
    group = f"modelship.model.{ns}.linear"
    wait_until(
        lambda: any(g["name"] == group for g in prometheus.rule_groups("alert")),
        timeout=180,
        what=f"rule group {group} loaded",
    )

    rng = np.random.default_rng(7)
    x = rng.standard_normal((PREDICTIONS, 4)).astype(np.float32)
    truth = np.argmax(x @ WEIGHTS, axis=1)
    for i in range(PREDICTIONS):
        _post(
            f"{served.url}/infer",
            {
                "id": f"p{i}",
                "inputs": [
                    {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x[i].tolist()}
                ],
            },
        )
    labels = [int(truth[i]) if i < CORRECT else (int(truth[i]) + 1) % 3 for i in range(PREDICTIONS)]
    answer = _post(
        f"{served.url}/feedback", [{"id": f"p{i}", "label": labels[i]} for i in range(PREDICTIONS)]
    )
    counts = {k: answer[k] for k in ("matched", "unknown", "invalid")}
    assert counts == {"matched": PREDICTIONS, "unknown": 0, "invalid": 0}, answer

    sel = f'namespace="{ns}", model="linear"'
    # Accuracy per revision, exact: the pod's counters as scraped (no extrapolation).
    labelled = f"sum by (revision) (modelship_feedback_predictions_total{{{sel}}})"
    correct = f"sum by (revision) (modelship_feedback_correct_total{{{sel}}})"

    def scraped_accuracy() -> dict[str, float] | None:
        if _value(prometheus.query(labelled)).get(revision) != PREDICTIONS:
            return None  # the scrape after the labels has not happened yet
        return _value(prometheus.query(f"{correct} / {labelled}"))

    accuracy = wait_until(scraped_accuracy, timeout=60, what="the labels scraped into Prometheus")
    assert accuracy == {revision: pytest.approx(CORRECT / PREDICTIONS)}

    rate = wait_until(
        lambda: _value(
            prometheus.query(f"sum by (revision) (rate(modelship_requests_total{{{sel}}}[1m]))")
        ),
        timeout=60,
        what="a request rate",
    )
    assert set(rate) == {revision} and rate[revision] > 0
    p99 = _value(
        prometheus.query(
            "histogram_quantile(0.99, sum by (revision, le) "
            f"(rate(modelship_request_duration_seconds_bucket{{{sel}}}[1m])))"
        )
    )
    assert set(p99) == {revision} and 0 < p99[revision] < 10

    # 0.75 is below the SLO's 0.9 with 40 labels (>= 20): the accuracy alert fires, for this
    # model and revision only.
    firing = wait_until(
        lambda: [
            a
            for a in prometheus.alerts()
            if a["labels"].get("alertname") == "ModelshipModelLowAccuracy"
            and a["labels"].get("namespace") == ns
            and a["state"] == "firing"
        ],
        timeout=120,
        what="ModelshipModelLowAccuracy firing",
    )
    assert {a["labels"].get("revision") for a in firing} == {revision}

    # Every panel of both dashboards returns data for this model (the operator's own series
    # through its PodMonitor, the model's through the operator-made one).
    check_dashboards_live(prometheus.url, ns, "linear", served.operator.prometheus_job)
