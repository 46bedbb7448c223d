"""Operator settings from the environment."""

from __future__ import annotations

import pytest
from modelship.settings import OperatorSettings
from pydantic import ValidationError


def test_defaults() -> None:
    s = OperatorSettings.from_env({})
    assert s.runtime_image == "docker.io/modelship/runtime:0.1.0"
    assert s.artifact_store == "file:///var/lib/modelship/artifacts"
    assert s.namespaces == ()


def test_environment_overrides() -> None:
    s = OperatorSettings.from_env(
        {
            "MODELSHIP_ARTIFACT_STORE": "s3://bucket/prefix/",
            "MODELSHIP_NAMESPACES": "a, b",
            "MODELSHIP_METRICS_PORT": "9100",
        }
    )
    assert s.artifact_store == "s3://bucket/prefix"
    assert s.namespaces == ("a", "b")
    assert s.metrics_port == 9100


def test_bad_store_names_the_variable() -> None:
    with pytest.raises(ValidationError, match="MODELSHIP_ARTIFACT_STORE"):
        OperatorSettings.from_env({"MODELSHIP_ARTIFACT_STORE": "ftp://x"})


@pytest.mark.parametrize(
    ("env", "uri", "named"),
    [
        ({}, "file:///models/m.onnx", "spec.model.uri file:///models/m.onnx"),
        ({}, "s3://b/m.onnx", "artifact store file:///var/lib/modelship/artifacts"),
        ({"MODELSHIP_ARTIFACT_STORE": "s3://b/p"}, "s3://b/m.onnx", None),
        ({"MODELSHIP_DEVELOPMENT": "true"}, "file:///models/m.onnx", None),
    ],
)
def test_host_paths_need_development_mode(env: dict[str, str], uri: str, named: str | None) -> None:
    refusal = OperatorSettings.from_env(env).host_path_refusal(uri)
    if named is None:
        assert refusal is None
    else:
        assert refusal is not None and named in refusal and "MODELSHIP_DEVELOPMENT=true" in refusal
