"""charts/modelship renders what manifests/ does, its values are checked, and `helm lint` is
clean: rendered by Helm's own command (hack/build-go-tool.sh helm), kustomize by kubectl's, and
the results dry-run against the real apiserver."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import helm
from tests.support.cluster import REPO, Cluster, kubectl

pytestmark = pytest.mark.integration

# Labels Helm charts conventionally add (and the chart's selectors carry, so two releases never
# select each other's pods); manifests/ has no release to name.
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
Key = tuple[str, str, str]


def _kustomize(path: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _normalized(value: Any) -> Any:
    """The object without Helm's labels, env as a set (its order means nothing here)."""
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, field in value.items():
        item = field
        # A Service's selector is a plain label map too.
        plain = isinstance(item, dict) and all(isinstance(v, str) for v in item.values())
        if key in ("labels", "matchLabels", "selector") and plain:
            item = {k: v for k, v in item.items() if k not in HELM_LABELS}
        if key == "env" and isinstance(item, list):
            item = sorted(item, key=lambda entry: entry["name"])
        out[key] = _normalized(item)
    return out


def _by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): _normalized(o)
        for o in objects
    }


def _env(objects: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def _assert_same(kustomized: list[dict[str, Any]], charted: list[dict[str, Any]]) -> None:
    # Helm does not make the release's namespace (`helm install --create-namespace` does).
    expected = {k: v for k, v in _by_key(kustomized).items() if k[0] != "Namespace"}
    got = _by_key(charted)
    assert sorted(got) == sorted(expected)
    for key, obj in expected.items():
        assert got[key] == obj, f"{key} differs from manifests/"


def test_defaults_render_what_kustomize_renders() -> None:
    kustomized = _kustomize(REPO / "manifests") + _kustomize(REPO / "manifests" / "monitoring")
    charted = helm.template(
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        include_crds=True,
    )
    _assert_same(kustomized, charted)
    # The selector keeps one release's pods apart from another's.
    deployment = next(o for o in charted if o["kind"] == "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "modelship-operator",
        "app.kubernetes.io/instance": "modelship",
    }


def test_development_mode_renders_what_the_development_overlay_renders() -> None:
    charted = helm.template(
        "development=true",
        "artifactStore.uri=file:///var/lib/modelship/artifacts",
        "artifactStore.secretName=",
        include_crds=True,
    )
    _assert_same(_kustomize(REPO / "hack" / "development"), charted)
    assert _env(charted)["MODELSHIP_DEVELOPMENT"] == "true"
    assert "MODELSHIP_DEVELOPMENT" not in _env(helm.template())


def test_namespaced_mode_grants_the_same_rules_only_in_the_watched_namespaces() -> None:
    cluster_role = next(o for o in _kustomize(REPO / "manifests") if o["kind"] == "ClusterRole")
    charted = helm.template("watchNamespaces={team-a,team-b}", namespace="ops")
    kinds = {o["kind"] for o in charted}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = {o["metadata"]["namespace"]: o for o in charted if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in charted if o["kind"] == "RoleBinding"}
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    for namespace, role in roles.items():
        assert role["rules"] == cluster_role["rules"], namespace
        assert bindings[namespace]["roleRef"]["name"] == role["metadata"]["name"]
        assert bindings[namespace]["subjects"] == [
            {"kind": "ServiceAccount", "name": "modelship-operator", "namespace": "ops"}
        ]
    assert _env(charted)["MODELSHIP_NAMESPACES"] == "team-a,team-b"


def test_settings_reach_the_operator_as_its_environment() -> None:
    env = _env(helm.template("settings.resync_seconds=120", "settings.build_memory_limit=8Gi"))
    assert env["MODELSHIP_RESYNC_SECONDS"] == "120"
    assert env["MODELSHIP_BUILD_MEMORY_LIMIT"] == "8Gi"


def test_monitoring_follows_the_release_name_and_namespace() -> None:
    charted = helm.template(
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboards.enabled=true",
        "monitoring.prometheusRule.labels.release=kube-prometheus",
        release="ml",
        namespace="ops",
    )
    by_kind = {o["kind"]: o for o in charted}
    assert by_kind["PodMonitor"]["metadata"]["name"] == "ml-operator"
    assert by_kind["PodMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    rules = json.dumps(by_kind["PrometheusRule"]["spec"])
    # Prometheus names the PodMonitor's job <namespace>/<name>; every alert selects that job.
    assert rules.count('job=\\"ops/ml-operator\\"') == 4
    assert "modelship-system" not in rules
    assert by_kind["PrometheusRule"]["metadata"]["labels"]["release"] == "kube-prometheus"
    dashboards = by_kind["ConfigMap"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    fleet = json.loads(dashboards["data"]["modelship-fleet.json"])
    model = json.loads(dashboards["data"]["modelship-model.json"])
    assert model == json.loads((REPO / "manifests" / "dashboards" / "model.json").read_text())
    assert fleet["uid"] == "modelship-fleet"
    assert "ops/ml-operator" in dashboards["data"]["modelship-fleet.json"]
    assert "modelship-system/" not in dashboards["data"]["modelship-fleet.json"]


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("settings.resync_secs=1", "resync_secs"),
        ("settings.runtime_image=x", "runtime_image"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("artifactStore.uri=gs://bucket", "artifactStore"),
        ("prometheus.scrapeIntervalSeconds=0", "scrapeIntervalSeconds"),
    ],
)
def test_bad_values_are_refused_naming_the_value(setting: str, named: str) -> None:
    result = helm.helm("template", "modelship", str(helm.CHART), "--set", setting)
    assert result.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def _documented_values() -> list[tuple[str, dict[str, Any]]]:
    """The chart values in docs/gitops.md: a Flux HelmRelease's `values`, an Argo CD
    Application's `helm.valuesObject` on charts/modelship."""
    found = []
    text = (REPO / "docs" / "gitops.md").read_text()
    for block in re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for doc in yaml.safe_load_all(block):
            if doc.get("kind") == "HelmRelease":
                assert doc["spec"]["chart"]["spec"]["chart"] == "./charts/modelship"
                found.append(("HelmRelease", doc["spec"]["values"]))
            elif doc.get("kind") == "Application":
                assert doc["spec"]["source"]["path"] == "charts/modelship"
                found.append(("Application", doc["spec"]["source"]["helm"]["valuesObject"]))
    return found


def test_the_documented_values_render(tmp_path: Path) -> None:
    documented = _documented_values()
    assert sorted(kind for kind, _ in documented) == ["Application", "HelmRelease"]
    for kind, values in documented:
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
        result = helm.helm(
            "template", "modelship", str(helm.CHART), "-f", str(tmp_path / "values.yaml")
        )
        assert result.returncode == 0, f"{kind}: {result.stderr}"


def test_an_older_kubernetes_is_refused_before_anything_is_applied() -> None:
    # The CRD's rules use fieldPath and reason (Kubernetes 1.28); an older apiserver would
    # reject the CRD after Helm had started installing.
    result = helm.helm("template", "modelship", str(helm.CHART), "--kube-version", "1.27.9")
    assert result.returncode != 0
    assert "chart requires kubeVersion: >=1.28.0-0" in result.stderr
    assert (
        helm.helm("template", "modelship", str(helm.CHART), "--kube-version", "1.28.0").returncode
        == 0
    )


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_helm_lint_is_clean(mode: str) -> None:
    settings = ["--set", "watchNamespaces={team-a}"] if mode == "namespaced" else []
    result = helm.helm("lint", "--strict", str(helm.CHART), *settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_the_apiserver_accepts_every_rendered_object(
    cluster: Cluster, namespace: str, mode: str
) -> None:
    settings = [
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboards.enabled=true",
    ]
    if mode == "namespaced":
        settings.append(f"watchNamespaces={{{namespace}}}")
    objects = helm.template(*settings, release="dry", namespace=namespace)
    manifest = yaml.safe_dump_all(objects)
    result = subprocess.run(
        [
            kubectl(),
            "--kubeconfig",
            cluster.kubeconfig,
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)
