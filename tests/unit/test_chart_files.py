"""charts/modelship's generated files equal a fresh run of hack/chart.py: the CRD, RBAC rules,
alerts and dashboards it carries are the repository's own, and its values schema knows every
operator setting."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from modelship.settings import OperatorSettings

from tests.support import hack_scripts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return hack_scripts.load("chart")


def test_the_chart_files_are_fresh(generator: ModuleType) -> None:
    assert generator.stale_files() == []
    assert generator.main(["--check"]) == 0


def test_a_stale_file_is_named(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Pointed at an empty chart folder, every generated file is reported stale.
    monkeypatch.setattr(generator, "CHART", tmp_path)
    stale = generator.stale_files()
    assert len(stale) == len(generator.COPIES) + 1
    assert tmp_path / "values.schema.json" in stale


def test_the_chart_sets_only_settings_the_operator_has(generator: ModuleType) -> None:
    assert set(generator.CHART_SETTINGS) <= set(OperatorSettings.model_fields)


def test_the_values_schema_lists_every_other_setting(generator: ModuleType) -> None:
    schema = json.loads((ROOT / "charts" / "modelship" / "values.schema.json").read_text())
    listed = set(schema["properties"]["settings"]["properties"])
    assert listed == set(OperatorSettings.model_fields) - set(generator.CHART_SETTINGS)
    assert schema["properties"]["settings"]["additionalProperties"] is False


def test_values_yaml_has_exactly_the_schema_keys() -> None:
    chart = ROOT / "charts" / "modelship"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"])
