"""The per-model dashboard ConfigMap: name, labels, owner, uid and variable defaults."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from modelship import api, dashboards, naming


def _md(name: str = "fraud", namespace: str = "ml") -> api.ModelDeployment:
    return api.ModelDeployment.from_body(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": 1},
            "spec": {"model": {"uri": "s3://models/fraud/model.onnx"}},
        }
    )


def _dashboard(configmap: dict[str, Any], key: str = "fraud.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(configmap["data"][key])
    return loaded


def test_configmap_is_named_labelled_and_owned_like_the_other_children() -> None:
    md = _md()
    configmap = dashboards.render_dashboard_configmap(md)
    assert configmap["apiVersion"] == "v1"
    assert configmap["kind"] == "ConfigMap"
    meta = configmap["metadata"]
    assert meta["name"] == "fraud-dashboard"
    assert meta["namespace"] == "ml"
    assert meta["labels"] == {
        **naming.common_labels("fraud", "monitoring"),
        "grafana_dashboard": "1",
    }
    assert meta["ownerReferences"] == [naming.owner_reference(md)]
    assert list(configmap["data"]) == ["fraud.json"]


def test_the_dashboard_opens_on_this_model() -> None:
    dashboard = _dashboard(dashboards.render_dashboard_configmap(_md()))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name, value in (("namespace", "ml"), ("model", "fraud")):
        assert variables[name]["current"] == {"selected": True, "text": value, "value": value}
        assert variables[name]["options"] == [variables[name]["current"]]
        assert variables[name]["type"] == "query", "the SRE can still switch to another model"
    assert "current" not in variables["datasource"]
    assert dashboard["title"] == "modelship / ml / fraud"
    assert dashboard["uid"] == dashboards.dashboard_uid("ml", "fraud")


def test_only_uid_title_and_variable_defaults_differ_from_the_committed_dashboard() -> None:
    committed = dashboards.model_dashboard()
    rendered = _dashboard(dashboards.render_dashboard_configmap(_md()))
    for key in ("uid", "title", "templating"):
        committed.pop(key)
        rendered.pop(key)
    assert rendered == committed


def test_render_is_deterministic_and_leaves_the_committed_dashboard_alone() -> None:
    first = dashboards.render_dashboard_configmap(_md())
    assert dashboards.render_dashboard_configmap(_md()) == first
    assert dashboards.model_dashboard()["uid"] == "modelship-model"
    variables = dashboards.model_dashboard()["templating"]["list"]
    assert all("current" not in v for v in variables)


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("ml", "fraud"),
        ("a" * 63, "b" * 40),
        ("team-payments-production", "fraud-detector-v2"),
    ],
)
def test_uid_is_deterministic_short_and_safe(namespace: str, name: str) -> None:
    uid = dashboards.dashboard_uid(namespace, name)
    assert uid == dashboards.dashboard_uid(namespace, name)
    assert len(uid) <= 40
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", uid)


def test_uids_of_look_alike_models_differ() -> None:
    assert dashboards.dashboard_uid("a-b", "c") != dashboards.dashboard_uid("a", "b-c")
    long_ns = "n" * 60
    assert dashboards.dashboard_uid(long_ns, "one") != dashboards.dashboard_uid(long_ns, "two")
    assert dashboards.dashboard_uid("ml", "fraud") != dashboards.model_dashboard()["uid"]
