"""Monitoring children against the real apiserver: applied and owned where prometheus-operator's
CRDs are served, reported (never fatal) where they are not, removed when switched off."""

from __future__ import annotations

from typing import Any

import pytest
from kopf.testing import KopfRunner
from modelship import kube

from tests.support.waiting import wait_until

from .conftest import Models

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "model": {"uri": "s3://models/fraud/v1/model.onnx"},
    "monitoring": {"podMonitor": True, "rules": True, "dashboard": True},
}


def _monitoring_condition(models: Models, reason: str) -> dict[str, Any] | None:
    cond = models.condition("fraud", "Monitoring")
    return cond if cond is not None and cond["reason"] == reason else None


def test_children_are_applied_owned_and_removed_when_switched_off(
    models: Models, kopf_operator: KopfRunner
) -> None:
    md = models.create("fraud", SPEC)
    cond = wait_until(
        lambda: _monitoring_condition(models, "Applied"),
        timeout=30,
        what="Monitoring Applied",
    )
    assert cond["status"] == "True"
    custom = models.custom
    for plural, name in (("podmonitors", "fraud"), ("prometheusrules", "fraud")):
        obj = custom.get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", models.namespace, plural, name
        )
        assert obj["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    dashboard = models.core.read_namespaced_config_map("fraud-dashboard", models.namespace)
    assert dashboard.metadata.labels["grafana_dashboard"] == "1"
    assert models.status("fraud")["monitoring"]["podMonitor"] == "fraud"

    models.patch_spec("fraud", {"monitoring": {"podMonitor": False, "rules": True}})

    def pod_monitor_gone() -> bool:
        items = custom.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", models.namespace, "podmonitors"
        )["items"]
        return not items and "podMonitor" not in (models.status("fraud").get("monitoring") or {})

    wait_until(pod_monitor_gone, timeout=30, what="the switched-off PodMonitor removed")


def test_missing_crds_are_a_condition_not_a_failure(
    models: Models, monkeypatch: pytest.MonkeyPatch, operator_environment: dict[str, str]
) -> None:
    # A group this apiserver really does not serve: its real answer is what a cluster without
    # prometheus-operator gives for monitoring.coreos.com.
    monkeypatch.setitem(
        kube._RESOURCES, "PodMonitor", ("/apis/absent.monitoring.modelship.io/v1", "podmonitors")
    )
    args = ["run", "--standalone", "--namespace", models.namespace, "-m", "modelship.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        models.create("fraud", {**SPEC, "monitoring": {"podMonitor": True, "dashboard": True}})
        cond = wait_until(
            lambda: _monitoring_condition(models, "CRDsMissing"),
            timeout=30,
            what="Monitoring CRDsMissing",
        )
        assert cond["status"] == "False"
        assert "PodMonitor" in cond["message"] and "prometheus-operator" in cond["message"]
        status = models.wait_phase("fraud", "Building")
        # The rest of the model goes on: the build Job exists, the dashboard was made.
        assert len(models.jobs("fraud")) == 1
        assert status["monitoring"] == {"dashboard": "fraud-dashboard"}
    assert runner.exception is None, runner.output[-3000:]
