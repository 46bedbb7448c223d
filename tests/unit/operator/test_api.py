"""Parsing of ModelDeployments and the revision identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from modelship import api
from pydantic import ValidationError

from .conftest import make_md

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BASE: dict[str, Any] = {"model": {"uri": "s3://models/fraud/model.onnx"}}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_parse(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == api.KIND
    api.ModelDeploymentSpec.model_validate(doc["spec"])


def test_defaults_apply() -> None:
    spec = make_md().spec
    assert spec.model.format == "onnx"
    assert spec.optimization.quantization == "none"
    assert spec.rollout.steps == [100]
    assert spec.desired_replicas() == 1


@pytest.mark.parametrize(
    ("replicas", "scaling", "served"),
    [
        (None, {}, 1),
        (3, {}, 3),
        (None, {"minReplicas": 2}, 2),  # the floor holds for the default too
        (0, {"minReplicas": 0}, 0),
        (1, {"minReplicas": 3}, 3),
        (9, {"maxReplicas": 4}, 4),
    ],
)
def test_spec_replicas_are_served_within_the_bounds(
    replicas: int | None, scaling: dict[str, Any], served: int
) -> None:
    body = {**BASE, "scaling": scaling} | ({} if replicas is None else {"replicas": replicas})
    spec = api.ModelDeploymentSpec.model_validate(body)
    assert spec.desired_replicas() == served
    assert not spec.autoscaled


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"uri": "s3://models/fraud/v8/model.onnx"}},
        {"optimization": {"quantization": "dynamic-int8"}},
        {"runtime": {"threads": 2}},
        {"runtime": {"image": "example/runtime:2"}},
    ],
)
def test_model_optimization_runtime_changes_make_a_new_revision(change: dict[str, Any]) -> None:
    assert make_md({**BASE, **change}).spec.revision() != make_md(BASE).spec.revision()


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 4},
        {"scaling": {"minReplicas": 2, "maxReplicas": 5}},
        {"rollout": {"steps": [10, 100], "interval": "1m"}},
        {"monitoring": {"podMonitor": True}},
        # How much a pod admits, and how fast a build runs, change nothing that is built.
        {"runtime": {"requestLimits": {"maxInFlight": 4, "deadline": "2s"}}},
        {"optimization": {"resources": {"limits": {"memory": "8Gi"}}}},
        # Spelling out a default is the same revision as leaving it out.
        {"optimization": {"graphOptimization": "all"}},
    ],
)
def test_scaling_rollout_and_defaults_keep_the_revision(change: dict[str, Any]) -> None:
    assert make_md({**BASE, **change}).spec.revision() == make_md(BASE).spec.revision()


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="modle"):
        api.ModelDeploymentSpec.model_validate({**BASE, "modle": {}})


def test_status_fields_written_by_others_are_ignored() -> None:
    md = make_md(phase="Ready", kopf={"progress": {}})
    assert md.status.phase == "Ready"
