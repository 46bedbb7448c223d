"""Alert rules: threshold resolution as a table, the rendered rules under `promtool test rules`."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelship import alerts, api, naming

from tests.support import promtool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SUITES = sorted((HERE / "promtool").glob("*.yaml"))
OPERATOR_RULES = ROOT / "manifests" / "monitoring" / "operator-rules.yaml"
RUNBOOK = ROOT / "docs" / "alerts.md"

# Prometheus' own duration syntax (model.ParseDuration): integers, largest unit first.
PROMETHEUS_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def make_md(name: str = "fraud", namespace: str = "ml", **spec: Any) -> api.ModelDeployment:
    body = {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {"model": {"uri": f"s3://models/{name}/model.onnx"}, **spec},
        "status": {},
    }
    return api.ModelDeployment.from_body(body)


def slo(**fields: Any) -> dict[str, Any]:
    return {"monitoring": {"rules": True, "slo": fields}}


def analysis(**fields: Any) -> dict[str, Any]:
    return {"rollout": {"analysis": fields}}


# --- threshold resolution -------------------------------------------------------------------

DEFAULT = alerts.Thresholds(
    p99_latency_ms=250.0,
    max_error_ratio=0.01,
    min_accuracy=None,
    min_labelled_samples=100,
    window="5m",
    accuracy_window="30m",
    slo_for="10m",
)


@pytest.mark.parametrize(
    ("spec", "changes"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param(
            analysis(maxP99LatencyMs=100, maxErrorRate=0.05, minAccuracy=0.9),
            {"p99_latency_ms": 100, "max_error_ratio": 0.05, "min_accuracy": 0.9},
            id="from-rollout-analysis",
        ),
        pytest.param(
            {
                **analysis(maxP99LatencyMs=100, maxErrorRate=0.05, minAccuracy=0.9),
                **slo(p99LatencyMs=500, maxErrorRatio=0.1, minAccuracy=0.8),
            },
            {"p99_latency_ms": 500, "max_error_ratio": 0.1, "min_accuracy": 0.8},
            id="slo-wins-over-analysis",
        ),
        pytest.param(
            {**analysis(maxErrorRate=0.05, minAccuracy=0.9), **slo(maxErrorRatio=0, minAccuracy=0)},
            {"max_error_ratio": 0, "min_accuracy": 0},
            id="explicit-zero-is-a-threshold",
        ),
        pytest.param(
            analysis(failureLimit=3),
            {},
            id="analysis-without-thresholds",
        ),
        pytest.param(slo(minAccuracy=0.95), {"min_accuracy": 0.95}, id="accuracy-from-slo-only"),
        pytest.param(slo(minLabelledSamples=20), {"min_labelled_samples": 20}, id="few-labels"),
        pytest.param(
            slo(window="2m"),
            {"window": "2m", "accuracy_window": "12m", "slo_for": "7m"},
            id="window",
        ),
        pytest.param(
            slo(window="1.5m"),
            {"window": "1m30s", "accuracy_window": "9m", "slo_for": "6m30s"},
            id="fractional-window",
        ),
        pytest.param(
            slo(window="1h"),
            {"window": "1h", "accuracy_window": "6h", "slo_for": "1h5m"},
            id="hour",
        ),
        pytest.param(
            slo(window="5s", pending="10s"),
            {"window": "10s", "accuracy_window": "1m", "slo_for": "20s"},
            id="short-window-raised-to-10s",
        ),
        pytest.param(
            slo(window="1m0.5s"),
            {"window": "1m500ms", "accuracy_window": "6m3s", "slo_for": "6m500ms"},
            id="milliseconds",
        ),
    ],
)
def test_thresholds_resolve(spec: dict[str, Any], changes: dict[str, Any]) -> None:
    expected = dataclasses.replace(DEFAULT, **changes)
    got = alerts.resolve_thresholds(make_md(**spec).spec)
    assert got == expected
    for duration in (got.window, got.accuracy_window, got.slo_for):
        assert PROMETHEUS_DURATION.match(duration), duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("30s", 30_000), ("1.5m", 90_000), ("1h30m", 5_400_000), ("2m0.25s", 120_250)],
)
def test_spec_durations_parse(text: str, ms: int) -> None:
    assert alerts.duration_ms(text) == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [(60_000, "1m"), (90_000, "1m30s"), (3_600_000, "1h"), (3_661_001, "1h1m1s1ms"), (0, "0s")],
)
def test_prometheus_durations_render(ms: int, text: str) -> None:
    assert alerts.prometheus_duration(ms) == text


def test_bad_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        alerts.duration_ms("5 minutes")


# --- the rendered rule ----------------------------------------------------------------------

# The models the promtool suites alert on, by the rules file the suites name.
MODELS = {
    "fraud.rules.yaml": make_md("fraud", "ml"),
    "iris.rules.yaml": make_md(
        "iris", "ml", **analysis(maxP99LatencyMs=100, maxErrorRate=0.05, minAccuracy=0.9)
    ),
    "churn.rules.yaml": make_md(
        "churn",
        "shop",
        **slo(
            window="2m",
            p99LatencyMs=500,
            maxErrorRatio=0.1,
            minAccuracy=0.8,
            minLabelledSamples=20,
        ),
    ),
}
MODEL_ALERTS = {
    "ModelshipModelHighErrorRatio",
    "ModelshipModelHighLatency",
    "ModelshipModelLowAccuracy",
    "ModelshipModelNoTraffic",
    "ModelshipModelBuildFailed",
    "ModelshipModelRolledBack",
    "ModelshipModelPodsNotReady",
}
OPERATOR_ALERTS = {
    "ModelshipOperatorDown",
    "ModelshipOperatorReconcileErrors",
    "ModelshipOperatorResyncStalled",
}
SELECTOR = re.compile(r"\b([a-z_:]+)\{([^}]*)\}")
# A metric name not followed by matchers would select every model's series.
BARE_SERIES = re.compile(r"\bmodelship_\w+\b(?!\{)")
# The operator's per-model series say `name`; the runtime's say `model`.
OPERATOR_SERIES = ("modelship_model_deployment_", "modelship_decisions_total")


def _rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_rule_is_a_child_of_the_model() -> None:
    md = MODELS["iris.rules.yaml"]
    rule = alerts.render_prometheus_rule(md)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == naming.monitoring_name("iris")
    assert rule["metadata"]["namespace"] == "ml"
    assert rule["metadata"]["labels"] == naming.common_labels("iris", "monitoring")
    assert rule["metadata"]["ownerReferences"] == [naming.owner_reference(md)]
    assert {r["alert"] for r in _rules(rule)} == MODEL_ALERTS


def test_no_accuracy_alert_without_a_floor() -> None:
    rule = alerts.render_prometheus_rule(make_md())
    assert {r["alert"] for r in _rules(rule)} == MODEL_ALERTS - {"ModelshipModelLowAccuracy"}


@pytest.mark.parametrize("md", list(MODELS.values()), ids=list(MODELS))
def test_every_selector_names_exactly_this_model(md: api.ModelDeployment) -> None:
    for r in _rules(alerts.render_prometheus_rule(md)):
        assert not BARE_SERIES.findall(r["expr"]), r["alert"]
        selectors = SELECTOR.findall(r["expr"])
        assert selectors, r["alert"]
        for metric, matchers in selectors:
            key = "name" if metric.startswith(OPERATOR_SERIES) else "model"
            assert f'namespace="{md.namespace}"' in matchers, (r["alert"], metric)
            assert f'{key}="{md.name}"' in matchers, (r["alert"], metric)


@pytest.mark.parametrize("md", list(MODELS.values()), ids=list(MODELS))
def test_every_alert_is_labelled_and_explained(md: api.ModelDeployment) -> None:
    for r in _rules(alerts.render_prometheus_rule(md)):
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert set(r["annotations"]) == {"summary", "description", "runbook_url"}, r["alert"]
        if "for" in r:
            assert PROMETHEUS_DURATION.match(r["for"]), r["alert"]


def test_every_runbook_link_has_its_section() -> None:
    anchors = {
        line.removeprefix("## ").strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    rules = [*_rules(alerts.render_prometheus_rule(MODELS["iris.rules.yaml"]))]
    rules += _rules(yaml.safe_load(OPERATOR_RULES.read_text()))
    for r in rules:
        base, _, anchor = r["annotations"]["runbook_url"].partition("#")
        assert base == alerts.RUNBOOK_URL, r["alert"]
        assert anchor == r["alert"].lower(), r["alert"]
        assert anchor in anchors, f"docs/alerts.md has no section ## {r['alert']}"


def test_operator_rules_select_the_operator_job() -> None:
    manifest = yaml.safe_load(OPERATOR_RULES.read_text())
    assert manifest["metadata"]["namespace"] == "modelship-system"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "modelship-operator"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelship"
    rules = _rules(manifest)
    assert {r["alert"] for r in rules} == OPERATOR_ALERTS
    for r in rules:
        for _metric, matchers in SELECTOR.findall(r["expr"]):
            assert 'job="modelship-system/modelship-operator"' in matchers, r["alert"]


# --- promtool -------------------------------------------------------------------------------


def _write_rules(path: Path, rule: dict[str, Any]) -> None:
    # promtool reads plain rule files: the PrometheusRule's spec is exactly that.
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rules and the operator's, next to copies of the suites that name them."""
    out = tmp_path_factory.mktemp("rules")
    for filename, md in MODELS.items():
        _write_rules(out / filename, alerts.render_prometheus_rule(md))
    _write_rules(out / "operator.rules.yaml", yaml.safe_load(OPERATOR_RULES.read_text()))
    for suite in SUITES:
        shutil.copy(suite, out / suite.name)
    return out


def _assert_ok(result: Any) -> None:
    assert result.returncode == 0, f"promtool failed:\n{result.stdout}\n{result.stderr}"


def test_rules_pass_promtool_check(rules_dir: Path) -> None:
    files = sorted(p.name for p in rules_dir.glob("*.rules.yaml"))
    assert len(files) == len(MODELS) + 1
    _assert_ok(promtool.run("check", "rules", *files, cwd=rules_dir))


@pytest.mark.parametrize("suite", SUITES, ids=[s.stem for s in SUITES])
def test_promtool_suite(rules_dir: Path, suite: Path) -> None:
    _assert_ok(promtool.run("test", "rules", suite.name, cwd=rules_dir))


def test_suites_see_every_alert_fire() -> None:
    fired = set()
    for suite in SUITES:
        for case in yaml.safe_load(suite.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert fired == MODEL_ALERTS | OPERATOR_ALERTS
