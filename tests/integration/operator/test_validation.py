"""Invalid ModelDeployments are refused by the apiserver (schema and CEL) naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import Models

pytestmark = pytest.mark.integration

MODEL = {"uri": "s3://models/fraud/model.onnx"}
SIGNATURE = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}

# (case id, metadata.name, spec, text the apiserver's message must contain)
INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    ("missing-model", "a", {}, "spec.model"),
    ("missing-uri", "a", {"model": {"format": "onnx"}}, "spec.model.uri"),
    ("bad-scheme", "a", {"model": {"uri": "ftp://host/m.onnx"}}, "spec.model.uri"),
    ("bad-format", "a", {"model": {**MODEL, "format": "caffe2"}}, "spec.model.format"),
    ("bad-sha256", "a", {"model": {**MODEL, "sha256": "xyz"}}, "spec.model.sha256"),
    (
        "sklearn-without-signature",
        "a",
        {"model": {"uri": "s3://m/model.joblib", "format": "sklearn"}},
        "spec.model.signature",
    ),
    (
        "bad-datatype",
        "a",
        {
            "model": {
                "uri": "s3://m/model.joblib",
                "format": "sklearn",
                "signature": {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1]}]},
            }
        },
        "spec.model.signature.inputs[0].datatype",
    ),
    (
        "static-int8-without-calibration",
        "a",
        {"model": MODEL, "optimization": {"quantization": "static-int8"}},
        "spec.optimization.calibrationData",
    ),
    (
        "auto-without-validation",
        "a",
        {"model": MODEL, "optimization": {"quantization": "auto"}},
        "spec.optimization.validation",
    ),
    (
        "bad-quantization",
        "a",
        {"model": MODEL, "optimization": {"quantization": "int4"}},
        "spec.optimization.quantization",
    ),
    (
        "accuracy-drop-above-one",
        "a",
        {
            "model": MODEL,
            "optimization": {"validation": {"dataset": "s3://d/g.npz", "maxAccuracyDrop": 2}},
        },
        "spec.optimization.validation.maxAccuracyDrop",
    ),
    (
        "min-above-max-replicas",
        "a",
        {"model": MODEL, "scaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.scaling.minReplicas",
    ),
    ("negative-replicas", "a", {"model": MODEL, "replicas": -1}, "spec.replicas"),
    (
        "replicas-and-targets-both-own-the-count",
        "a",
        {"model": MODEL, "replicas": 3, "scaling": {"targets": {"concurrencyPerReplica": 2}}},
        "the built-in autoscaler owns it",
    ),
    (
        "targets-without-a-target",
        "a",
        {"model": MODEL, "scaling": {"targets": {}}},
        "spec.scaling.targets needs at least one target",
    ),
    (
        "autoscaled-from-zero",
        "a",
        {"model": MODEL, "scaling": {"minReplicas": 0, "targets": {"p95LatencyMs": 50}}},
        "cannot wake a model from zero replicas",
    ),
    (
        "scaling-interval-too-short",
        "a",
        {"model": MODEL, "scaling": {"interval": "500ms"}},
        "spec.scaling.interval must be between 1s and 10m",
    ),
    (
        "deadline-above-an-hour",
        "a",
        {"model": MODEL, "runtime": {"requestLimits": {"deadline": "2h"}}},
        "spec.runtime.requestLimits.deadline must be more than 0s and at most 1h",
    ),
    (
        "deadline-zero",
        "a",
        {"model": MODEL, "runtime": {"requestLimits": {"deadline": "0s"}}},
        "spec.runtime.requestLimits.deadline must be more than 0s",
    ),
    (
        "no-request-admitted",
        "a",
        {"model": MODEL, "runtime": {"requestLimits": {"maxInFlight": 0}}},
        "spec.runtime.requestLimits.maxInFlight",
    ),
    (
        "steps-not-ending-at-100",
        "a",
        {"model": MODEL, "rollout": {"steps": [10, 50]}},
        "spec.rollout.steps",
    ),
    (
        "steps-descending",
        "a",
        {"model": MODEL, "rollout": {"steps": [50, 10, 100]}},
        "spec.rollout.steps",
    ),
    (
        "steps-duplicated",
        "a",
        {"model": MODEL, "rollout": {"steps": [50, 50, 100]}},
        "spec.rollout.steps",
    ),
    ("step-above-100", "a", {"model": MODEL, "rollout": {"steps": [150]}}, "spec.rollout.steps"),
    (
        "bad-interval",
        "a",
        {"model": MODEL, "rollout": {"interval": "soon"}},
        "spec.rollout.interval",
    ),
    (
        "gateway-without-parents",
        "a",
        {"model": MODEL, "rollout": {"trafficRouter": {"type": "gatewayAPI"}}},
        "spec.rollout.trafficRouter.parentRefs",
    ),
    ("bad-runtime-type", "a", {"model": MODEL, "runtime": {"type": "tgi"}}, "spec.runtime.type"),
    (
        "zero-threads",
        "a",
        {"model": MODEL, "runtime": {"threads": 0}},
        "spec.runtime.threads",
    ),
    (
        "zero-batch",
        "a",
        {"model": MODEL, "runtime": {"batching": {"maxBatchSize": 0}}},
        "spec.runtime.batching.maxBatchSize",
    ),
    (
        "metric-without-bound",
        "a",
        {
            "model": MODEL,
            "rollout": {"analysis": {"metrics": [{"name": "m", "query": "up"}]}},
        },
        "spec.rollout.analysis.metrics[0]",
    ),
    (
        "analysis-without-checks",
        "a",
        {"model": MODEL, "rollout": {"analysis": {"failureLimit": 2}}},
        "spec.rollout.analysis: set at least one check",
    ),
    (
        "negative-p99-increase",
        "a",
        {"model": MODEL, "rollout": {"analysis": {"maxP99LatencyIncreaseVsStable": -0.1}}},
        "spec.rollout.analysis.maxP99LatencyIncreaseVsStable",
    ),
    (
        "error-increase-of-one",
        "a",
        {"model": MODEL, "rollout": {"analysis": {"maxErrorRateIncreaseVsStable": 1}}},
        "spec.rollout.analysis.maxErrorRateIncreaseVsStable",
    ),
    (
        "accuracy-window-under-1s",
        "a",
        {"model": MODEL, "rollout": {"analysis": {"minAccuracy": 0.9, "accuracyWindow": "0s"}}},
        "spec.rollout.analysis.accuracyWindow",
    ),
    ("unknown-field", "a", {"model": MODEL, "replica": 3}, "spec.replica"),
    ("name-too-long", "a" * 50, {"model": MODEL}, "metadata.name"),
    ("name-not-dns-1035", "1abc", {"model": MODEL}, "metadata.name"),
]


@pytest.mark.parametrize(
    ("name", "spec", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_spec_is_refused_naming_the_field(
    models: Models, name: str, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as caught:
        models.create(name, spec, dry_run=True)
    assert caught.value.status in (400, 422), caught.value.body  # 400: strict decoding
    message = json.loads(caught.value.body or "{}")["message"]
    assert field in message, message


def test_a_full_valid_spec_is_accepted_with_defaults(models: Models) -> None:
    created = models.create(
        "full",
        {
            "model": {**MODEL, "credentialsSecret": "s3-creds"},
            "optimization": {
                "quantization": "static-int8",
                "calibrationData": "s3://d/calib.npz",
                "validation": {"dataset": "s3://d/golden.npz"},
            },
            "runtime": {"resources": {"requests": {"cpu": 1, "memory": "256Mi"}}},
            "scaling": {"minReplicas": 1, "maxReplicas": 3},
            "rollout": {"steps": [5, 25, 100], "interval": "1m30s"},
        },
        dry_run=True,
    )
    spec = created["spec"]
    assert spec["model"]["format"] == "onnx"
    # The scale subresource always has a field to read (kubectl scale on a fresh object).
    assert spec["replicas"] == 1
    assert spec["scaling"]["interval"] == "15s" and spec["scaling"]["tolerance"] == 0.1
    assert spec["optimization"]["graphOptimization"] == "all"
    assert spec["runtime"]["batching"] == {"maxBatchSize": 8, "maxDelayMs": 2.0}
    assert spec["monitoring"] == {
        "podMonitor": False,
        "rules": False,
        "dashboard": False,
        "slo": {"minLabelledSamples": 100, "window": "5m", "pending": "5m"},
    }


@pytest.mark.parametrize(
    ("fmt", "uri"), [("keras", "s3://m/model.keras"), ("tensorflow", "s3://m/saved.tar.gz")]
)
def test_tensorflow_formats_need_no_signature(models: Models, fmt: str, uri: str) -> None:
    """A SavedModel and a Keras file declare their inputs: the build reads them."""
    created = models.create(f"tf-{fmt}", {"model": {"uri": uri, "format": fmt}}, dry_run=True)
    assert created["spec"]["model"]["format"] == fmt
    assert "signature" not in created["spec"]["model"]
