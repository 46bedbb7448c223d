"""End to end on a real node: a `format: keras` ModelDeployment builds in the TensorFlow build
image, reaches Ready, and its pods answer on the Open Inference Protocol and on TF Serving's REST
API what TensorFlow answers for the same rows (within 1e-4)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.json_http import post
from tests.support.store import ObjectStore
from tests.support.waiting import wait_until

from .conftest import Models, OperatorProcess, free_port, serving_env, serving_namespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
TOLERANCE = 1e-4


def _keras_model() -> tuple[Any, bytes]:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4,), name="features")
    hidden = tf.keras.layers.Dense(8, activation="relu")(inputs)
    outputs = tf.keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
    model = tf.keras.Model(inputs, outputs)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.keras"
        model.save(path)
        return model, path.read_bytes()


def test_keras_model_is_built_served_and_answers_on_both_apis(
    models: Models, operator_environment: dict[str, str], tmp_path: Path
) -> None:
    model, data = _keras_model()
    uri = ObjectStore.from_endpoints().upload(f"models/{models.namespace}/model.keras", data)
    serving_namespace(models)
    env = {**operator_environment, **serving_env(), "MODELSHIP_METRICS_PORT": str(free_port())}
    operator = OperatorProcess(models.namespace, env, tmp_path / "operator.log")
    operator.start()
    try:
        models.create(
            "classifier",
            {
                # No signature: the build reads it from the Keras model.
                "model": {"uri": uri, "format": "keras"},
                # fp32 only, so the served answers are TensorFlow's to 1e-4.
                "optimization": {"quantization": "none"},
                "replicas": 1,
            },
        )

        def settled() -> dict[str, Any] | None:
            status = models.status("classifier")
            return status if status.get("phase") in ("Ready", "Failed") else None

        status = wait_until(settled, timeout=420, what="md/classifier Ready (or Failed)")
        assert status["phase"] == "Ready", (status, operator.output())
        build = status["build"]
        assert build["state"] == "Succeeded" and build["selected"] == "fp32"
        # The agreement of the ONNX model with TensorFlow on the build's rows, in status.
        (variant,) = build["variants"]
        assert variant["accuracy"] == 1.0

        job = models.batch.read_namespaced_job(build["job"], models.namespace)
        (builder,) = job.spec.template.spec.init_containers
        assert builder.image == "docker.io/modelship/build-tensorflow:0.1.0"

        service = models.core.read_namespaced_service("classifier", models.namespace)
        base = f"http://{service.spec.cluster_ip}:8080"
        x = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)
        want = np.asarray(model(x, training=False))
        body = {
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [6, 4], "data": x.tolist()}
            ]
        }
        v2 = wait_until(
            lambda: post(f"{base}/v2/models/classifier/infer", body),
            timeout=60,
            what="an inference through the Service",
        )
        (output,) = v2["outputs"]
        assert output["name"] == "probabilities"
        got = np.asarray(output["data"]).reshape(output["shape"])
        assert np.max(np.abs(got - want)) <= TOLERANCE

        rows = post(f"{base}/v1/models/classifier:predict", {"instances": x.tolist()})
        assert np.max(np.abs(np.asarray(rows["predictions"]) - want)) <= TOLERANCE
        columns = post(f"{base}/v1/models/classifier:predict", {"inputs": x.tolist()})
        assert np.max(np.abs(np.asarray(columns["outputs"]) - want)) <= TOLERANCE
    finally:
        operator.stop()
