"""The committed dashboards equal a fresh generation by hack/dashboards.py (the Grafana SDK)."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest
from modelship import dashboards

from tests.support import hack_scripts
from tests.unit.monitoring_dashboards.queries import ROOT


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        pytest.fail(
            "grafana-foundation-sdk is not installed: the dashboards are generated with it "
            "(see docs/dashboards.md for the pinned release)"
        )
    return hack_scripts.load("dashboards")


def test_committed_dashboards_match_a_fresh_generation(generator: ModuleType) -> None:
    for path, build in generator.outputs().items():
        committed = path.read_text() if path.exists() else ""
        assert committed == generator.render_json(build()), (
            f"{path.relative_to(ROOT)} is stale: run `python hack/dashboards.py`"
        )


def test_check_mode_passes_on_the_committed_files(generator: ModuleType) -> None:
    assert generator.main(["--check"]) == 0


def test_generation_is_deterministic(generator: ModuleType) -> None:
    first = generator.render_json(generator.build_model_dashboard())
    assert first == generator.render_json(generator.build_model_dashboard())


def test_the_operator_serves_the_committed_json() -> None:
    manifests = ROOT / "manifests" / "dashboards"
    assert dashboards.model_dashboard() == json.loads((manifests / "model.json").read_text())
    assert dashboards.fleet_dashboard() == json.loads((manifests / "fleet.json").read_text())


def test_dashboards_have_stable_uids_unique_panel_ids_and_the_modelship_tag() -> None:
    for dashboard, uid in (
        (dashboards.model_dashboard(), "modelship-model"),
        (dashboards.fleet_dashboard(), "modelship-fleet"),
    ):
        assert dashboard["uid"] == uid
        assert "modelship" in dashboard["tags"]
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert [t["refId"] for t in panel["targets"]], panel["title"]


def test_model_dashboard_has_the_panels_sres_look_for() -> None:
    titles = " | ".join(p.get("title", "") for p in dashboards.model_dashboard()["panels"])
    for wanted in (
        "Requests per second by revision and outcome",
        "Error ratio by revision",
        "Request latency by revision",
        "Batch size by revision",
        "Queue time by revision",
        "Accuracy by revision",
        "Replicas: desired vs ready",
        "In-flight requests by revision",
    ):
        assert wanted in titles
    variables = [v["name"] for v in dashboards.model_dashboard()["templating"]["list"]]
    assert variables == ["datasource", "namespace", "model"]
    annotations = dashboards.model_dashboard()["annotations"]["list"]
    assert [a["name"] for a in annotations] == ["Operator decisions"]
    assert "modelship_decisions_total" in annotations[0]["expr"]


def test_latency_panel_has_p50_p95_p99_per_revision() -> None:
    panel = next(
        p
        for p in dashboards.model_dashboard()["panels"]
        if p.get("title") == "Request latency by revision"
    )
    exprs = [t["expr"] for t in panel["targets"]]
    assert [e.split(",")[0] for e in exprs] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all("sum by (revision, le)" in e for e in exprs)
    assert all("modelship_request_duration_seconds_bucket" in e for e in exprs)
