"""The committed CRD equals a fresh generation and is a well-formed structural schema."""

from __future__ import annotations

from typing import Any

import yaml
from modelship import crd


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_committed_crd_matches_a_fresh_generation() -> None:
    committed = crd.CRD_PATH.read_text()
    assert committed == crd.render_crd_yaml(), "crds/ is stale: run `make crds`"


def test_check_mode_reports_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("old")
    assert crd.main(["--output", str(stale), "--check"]) == 1
    assert crd.main(["--output", str(stale)]) == 0
    assert crd.main(["--output", str(stale), "--check"]) == 0


def _schema() -> dict[str, Any]:
    doc = yaml.safe_load(crd.render_crd_yaml())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural_without_titles_refs_or_null_branches() -> None:
    for path, node in _walk(_schema()):
        assert "title" not in node, path
        assert "$ref" not in node and "$defs" not in node, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert {"type": "null"} not in node.get("anyOf", []), path


def test_every_property_has_a_description() -> None:
    for path, node in _walk(_schema()):
        for name, prop in (node.get("properties") or {}).items():
            if path == "" and name == "metadata":
                continue  # the apiserver forbids describing metadata
            assert prop.get("description"), f"{path}.properties.{name} has no description"


def test_spec_has_defaults_enums_and_cel_rules() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["model"]["properties"]["format"]["default"] == "onnx"
    assert "auto" in spec["optimization"]["properties"]["quantization"]["enum"]
    assert spec["rollout"]["properties"]["steps"]["default"] == [100]
    assert spec["optimization"]["default"] == {"graphOptimization": "all", "quantization": "none"}
    rules = [r["rule"] for _, n in _walk(spec) for r in n.get("x-kubernetes-validations", [])]
    assert any("calibrationData" in r for r in rules)
    assert any("minReplicas <= self.maxReplicas" in r for r in rules)
    assert any("isSorted" in r for r in rules)


def test_printer_columns_and_subresources() -> None:
    version = yaml.safe_load(crd.render_crd_yaml())["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Phase", "Ready", "Stable", "Canary", "Weight", "Replicas", "Age"]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}
