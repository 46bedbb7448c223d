"""Builders of parsed ModelDeployments and observed children for the operator's unit tests."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import api
from modelship.settings import OperatorSettings


def make_md(spec: dict[str, Any] | None = None, **status: Any) -> api.ModelDeployment:
    """A parsed ModelDeployment with a minimal valid spec, overridable."""
    body = {
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "uid-1", "generation": 3},
        "spec": spec or {"model": {"uri": "s3://models/fraud/model.onnx"}},
        "status": status,
    }
    return api.ModelDeployment.from_body(body)


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(artifact_store="s3://artifacts/ms")
