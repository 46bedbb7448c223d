"""Which monitoring children a spec wants, and where status says they exist."""

from __future__ import annotations

import pytest
from modelship import api, kube, monitoring

from .conftest import make_md

MODEL = {"uri": "s3://m/model.onnx"}


@pytest.mark.parametrize(
    ("wanted", "kinds"),
    [
        ({}, set()),
        ({"podMonitor": True}, {"PodMonitor"}),
        ({"rules": True}, {"PrometheusRule"}),
        ({"dashboard": True}, {"ConfigMap"}),
        (
            {"podMonitor": True, "rules": True, "dashboard": True},
            {"PodMonitor", "PrometheusRule", "ConfigMap"},
        ),
    ],
)
def test_desired_children_follow_the_spec(wanted: dict[str, bool], kinds: set[str]) -> None:
    md = make_md({"model": MODEL, "monitoring": wanted})
    children = monitoring.desired(md, "https://runbooks.example/alerts")
    # Every kind is listed either way, so a switched-off child can be deleted.
    assert [c.kind for c in children] == ["PodMonitor", "PrometheusRule", "ConfigMap"]
    assert {c.kind for c in children if c.body is not None} == kinds
    for child in children:
        if child.body is not None:
            assert child.body["kind"] == child.kind
            assert child.body["metadata"]["name"] == child.name
            assert child.body["metadata"]["namespace"] == "ml"
            assert child.body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_rules_link_the_configured_runbook() -> None:
    md = make_md({"model": MODEL, "monitoring": {"rules": True}})
    (rule,) = [c.body for c in monitoring.desired(md, "https://runbooks.example/a") if c.body]
    links = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert links and all(link.startswith("https://runbooks.example/a#") for link in links)


def test_recorded_names_come_from_status() -> None:
    status = api.ModelDeploymentStatus(
        monitoring=api.MonitoringStatus(pod_monitor="fraud", dashboard="fraud-dashboard")
    )
    assert monitoring.recorded(status, "PodMonitor") == "fraud"
    assert monitoring.recorded(status, "PrometheusRule") is None
    assert monitoring.recorded(status, "ConfigMap") == "fraud-dashboard"
    assert monitoring.recorded(api.ModelDeploymentStatus(), "PodMonitor") is None


@pytest.mark.parametrize(
    ("status", "message", "missing"),
    [
        (404, "404 page not found", True),  # the group is not served at all (no CRD)
        (404, "the server could not find the requested resource", True),
        (404, 'podmonitors.monitoring.coreos.com "fraud" not found', False),  # just absent
        (403, "forbidden", False),
    ],
)
def test_an_unserved_kind_is_told_from_an_absent_object(
    status: int, message: str, missing: bool
) -> None:
    assert kube.ApiError(status, "GET", "/apis/x", message).kind_missing is missing
