"""TF Serving's REST API on a real server process, sent as TF Serving clients send it (plain
HTTP with JSON, https://www.tensorflow.org/tfx/serving/api_rest): status, metadata, and
`:predict` in the row and columnar forms, answered like TF Serving and equal to the Open
Inference Protocol's answers for the same inputs."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.runtime import onnx_models
from tests.integration.runtime.server_process import ServerProcess, served

pytestmark = pytest.mark.integration


def _call(server: ServerProcess, path: str, body: Any = None) -> tuple[int, Any]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.base}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def regressor_server(
    regressor_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with served(regressor_path, "sum", tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture(scope="module")
def strings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = onnx_models.identity_model(tmp_path_factory.mktemp("m") / "s.onnx", ("BYTES",))
    with served(path, "echo", tmp_path_factory.mktemp("logs")) as server:
        yield server


def test_status_and_metadata(two_input_server: ServerProcess) -> None:
    for path in ("/v1/models/pair", "/v1/models/pair/versions/3"):
        status, doc = _call(two_input_server, path)
        assert status == 200, doc
        assert doc == {
            "model_version_status": [
                {
                    "version": "3",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    status, doc = _call(two_input_server, "/v1/models/pair/metadata")
    assert status == 200, doc
    assert doc["model_spec"] == {"name": "pair", "signature_name": "", "version": "3"}
    signature = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert set(signature["inputs"]) == {"a", "b"}
    assert set(signature["outputs"]) == {"sum", "product"}
    assert signature["inputs"]["a"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["a"]["tensor_shape"]["dim"]] == ["-1", "4"]


def test_row_form_with_named_inputs(two_input_server: ServerProcess) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    instances = [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(2)]
    status, doc = _call(two_input_server, "/v1/models/pair:predict", {"instances": instances})
    assert status == 200, doc
    assert list(doc) == ["predictions"] and len(doc["predictions"]) == 2
    for i, row in enumerate(doc["predictions"]):
        np.testing.assert_allclose(row["sum"], a[i] + b[i])
        np.testing.assert_allclose(row["product"], a[i] * b[i])


def test_columnar_form_with_named_inputs_and_a_version(two_input_server: ServerProcess) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    body = {"signature_name": "serving_default", "inputs": {"a": a.tolist(), "b": a.tolist()}}
    status, doc = _call(two_input_server, "/v1/models/pair/versions/3:predict", body)
    assert status == 200, doc
    np.testing.assert_allclose(doc["outputs"]["sum"], a + a)
    np.testing.assert_allclose(doc["outputs"]["product"], a * a)


def test_single_input_and_output_in_both_forms_equal_the_v2_answer(
    regressor_server: ServerProcess,
) -> None:
    x = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]
    v2 = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": x}]}
    status, oip = _call(regressor_server, "/v2/models/sum/infer", v2)
    assert status == 200, oip
    expected = np.asarray(oip["outputs"][0]["data"]).reshape(2, 1).tolist()
    assert expected == [[6.0], [15.5]]
    assert _call(regressor_server, "/v1/models/sum:predict", {"instances": x}) == (
        200,
        {"predictions": expected},
    )
    assert _call(regressor_server, "/v1/models/sum:predict", {"inputs": x}) == (
        200,
        {"outputs": expected},
    )


def test_multiple_outputs_per_row(mlp_server: ServerProcess) -> None:
    x = np.random.default_rng(1).random((3, 16)).astype(np.float32)
    status, doc = _call(mlp_server, "/v1/models/mlp:predict", {"instances": x.tolist()})
    assert status == 200, doc
    rows = doc["predictions"]
    assert len(rows) == 3 and all(set(r) == {"scores", "label"} for r in rows)
    for row in rows:
        assert row["label"] == int(np.argmax(row["scores"]))


def test_strings_plain_and_base64(strings_server: ServerProcess) -> None:
    encoded = base64.b64encode(b"\xffbinary").decode()
    body = {"inputs": [["plain", {"b64": encoded}, "z"]]}
    status, doc = _call(strings_server, "/v1/models/echo:predict", body)
    assert status == 200, doc
    assert doc["outputs"][0][0] == "plain" and doc["outputs"][0][2] == "z"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/models/pair:predict", b"{not json", 400, "JSON"),
        ("/v1/models/pair:predict", {"instances": [], "inputs": {}}, 400, "exactly one"),
        ("/v1/models/pair:predict", {"inputs": {"c": [[1.0]]}}, 400, "'c'"),
        ("/v1/models/pair:predict", {"inputs": [[1.0, 2.0, 3.0, 4.0]]}, 400, "must name them"),
        ("/v1/models/pair:predict", {"instances": [{"a": [1.0] * 4}, {"b": [1.0] * 4}]}, 400, ""),
        ("/v1/models/pair:predict", {"signature_name": "other", "inputs": {}}, 400, "other"),
        ("/v1/models/pair:predict", {"inputs": {"a": [["x"] * 4], "b": [[1.0] * 4]}}, 400, ""),
        ("/v1/models/nope:predict", {"inputs": {}}, 404, "nope"),
        ("/v1/models/pair/versions/9", None, 404, "9"),
        ("/v1/models/pair:classify", {"examples": []}, 404, ":predict"),
    ],
)
def test_errors_have_tf_servings_shape(
    two_input_server: ServerProcess, path: str, body: Any, status: int, needle: str
) -> None:
    got, doc = _call(two_input_server, path, body)
    assert got == status, doc
    assert list(doc) == ["error"] and needle in doc["error"], doc
    assert two_input_server.alive()
