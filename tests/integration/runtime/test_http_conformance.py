"""Conformance of the REST front end, driven by the unmodified tritonclient.http client."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.runtime.onnx_models import ONNX_TYPES
from tests.integration.runtime.server_process import ServerProcess
from tests.support.waiting import wait_until


def _client(server: ServerProcess) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.http_url, network_timeout=30.0)


def _sample(datatype: str, rows: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    shape = (rows, 3)
    if datatype == "BYTES":
        return np.array([f"w{i}-é".encode() for i in range(rows * 3)], dtype=np.object_).reshape(
            shape
        )
    if datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if datatype.startswith("FP"):
        dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype]
        return rng.standard_normal(shape).astype(dtype)
    dtype = np.dtype(datatype.lower())
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def raw_post(
    server: ServerProcess, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class TestHealthAndMetadata:
    def test_live_ready_and_server_metadata(self, mlp_server: ServerProcess) -> None:
        client = _client(mlp_server)
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("mlp")
        assert client.is_model_ready("mlp", "1")
        meta = client.get_server_metadata()
        assert meta["name"] == "modelship"
        assert "binary_tensor_data" in meta["extensions"]

    def test_model_metadata_names_inputs_and_outputs(self, mlp_server: ServerProcess) -> None:
        meta = _client(mlp_server).get_model_metadata("mlp", "1")
        assert meta["name"] == "mlp"
        assert meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]
        assert [o["name"] for o in meta["outputs"]] == ["scores", "label"]

    def test_unknown_model_and_version_are_404(self, mlp_server: ServerProcess) -> None:
        client = _client(mlp_server)
        with pytest.raises(InferenceServerException) as err:
            client.get_model_metadata("nope")
        assert err.value.status() == "404"
        assert "unknown model 'nope'" in err.value.message()
        with pytest.raises(InferenceServerException) as err:
            client.get_model_metadata("mlp", "7")
        assert "unknown version '7'" in err.value.message()
        assert not client.is_model_ready("nope")


class TestInfer:
    @pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
    def test_mlp_matches_onnxruntime(
        self, mlp_server: ServerProcess, mlp_path: Path, binary: bool
    ) -> None:
        x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
        expected = ort.InferenceSession(str(mlp_path)).run(None, {"x": x})
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("scores", "label")
        ]
        result = _client(mlp_server).infer("mlp", [inp], outputs=outputs, request_id="req-42")
        assert result.get_response()["id"] == "req-42"
        np.testing.assert_allclose(result.as_numpy("scores"), expected[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("label"), expected[1])

    def test_default_outputs_come_back_binary(self, mlp_server: ServerProcess) -> None:
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(np.ones((1, 16), np.float32))
        result = _client(mlp_server).infer("mlp", [inp])
        assert result.as_numpy("scores").shape == (1, 4)
        assert result.as_numpy("label").dtype == np.int64

    @pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
    def test_every_datatype_round_trips(self, identity_server: ServerProcess, binary: bool) -> None:
        rng = np.random.default_rng(7)
        inputs, arrays = [], {}
        for dt in ONNX_TYPES:
            arrays[dt] = _sample(dt, 2, rng)
            inp = httpclient.InferInput(f"in_{dt}", [2, 3], dt)
            inp.set_data_from_numpy(arrays[dt], binary_data=binary)
            inputs.append(inp)
        outputs = [
            httpclient.InferRequestedOutput(f"out_{dt}", binary_data=binary) for dt in ONNX_TYPES
        ]
        result = _client(identity_server).infer("types", inputs, outputs=outputs)
        for dt, sent in arrays.items():
            got = result.as_numpy(f"out_{dt}")
            if dt == "BYTES":
                as_text = [v.decode() if isinstance(v, bytes) else v for v in got.reshape(-1)]
                assert as_text == [v.decode() for v in sent.reshape(-1)]
            else:
                assert got.dtype == sent.dtype, dt
                np.testing.assert_array_equal(got, sent, err_msg=dt)

    def test_several_inputs_and_a_selected_output(self, two_input_server: ServerProcess) -> None:
        a = np.arange(8, dtype=np.float32).reshape(2, 4)
        b = np.full((2, 4), 2.0, np.float32)
        ia = httpclient.InferInput("a", [2, 4], "FP32")
        ia.set_data_from_numpy(a, binary_data=False)
        ib = httpclient.InferInput("b", [2, 4], "FP32")
        ib.set_data_from_numpy(b, binary_data=True)
        client = _client(two_input_server)
        result = client.infer(
            "pair",
            [ia, ib],
            model_version="3",
            outputs=[httpclient.InferRequestedOutput("product")],
        )
        np.testing.assert_array_equal(result.as_numpy("product"), a * b)
        assert result.as_numpy("sum") is None
        both = client.infer("pair", [ia, ib])
        np.testing.assert_array_equal(both.as_numpy("sum"), a + b)
        assert both.get_response()["model_version"] == "3"


class TestErrors:
    def _infer_error(
        self, server: ServerProcess, name: str, inputs: list[httpclient.InferInput], **kw: Any
    ) -> InferenceServerException:
        with pytest.raises(InferenceServerException) as err:
            _client(server).infer(name, inputs, **kw)
        return err.value

    def test_wrong_shape_names_input_and_shapes(self, mlp_server: ServerProcess) -> None:
        inp = httpclient.InferInput("x", [1, 15], "FP32")
        inp.set_data_from_numpy(np.ones((1, 15), np.float32))
        err = self._infer_error(mlp_server, "mlp", [inp])
        assert err.status() == "400"
        assert "input 'x' has shape [1, 15]" in err.message()

    def test_wrong_datatype(self, mlp_server: ServerProcess) -> None:
        inp = httpclient.InferInput("x", [1, 16], "FP64")
        inp.set_data_from_numpy(np.ones((1, 16), np.float64))
        err = self._infer_error(mlp_server, "mlp", [inp])
        assert "datatype FP64" in err.message() and "expects FP32" in err.message()

    def test_missing_and_unknown_inputs_and_outputs(self, two_input_server: ServerProcess) -> None:
        ia = httpclient.InferInput("a", [1, 4], "FP32")
        ia.set_data_from_numpy(np.ones((1, 4), np.float32))
        assert "missing input(s) 'b'" in self._infer_error(two_input_server, "pair", [ia]).message()
        ic = httpclient.InferInput("c", [1, 4], "FP32")
        ic.set_data_from_numpy(np.ones((1, 4), np.float32))
        assert (
            "unknown input 'c'" in self._infer_error(two_input_server, "pair", [ia, ic]).message()
        )
        ib = httpclient.InferInput("b", [1, 4], "FP32")
        ib.set_data_from_numpy(np.ones((1, 4), np.float32))
        err = self._infer_error(
            two_input_server, "pair", [ia, ib], outputs=[httpclient.InferRequestedOutput("diff")]
        )
        assert "unknown output 'diff'" in err.message()

    def test_unknown_model_infer_is_404(self, mlp_server: ServerProcess) -> None:
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(np.ones((1, 16), np.float32))
        assert self._infer_error(mlp_server, "other", [inp]).status() == "404"

    @pytest.mark.parametrize(
        ("body", "headers", "fragment"),
        [
            (b"{not json", {}, "not valid JSON"),
            (b"[1,2]", {}, "JSON object"),
            (b'{"inputs": []}', {}, "non-empty list"),
            (b'{"inputs":[{"name":"x","datatype":"FP33","shape":[1,16],"data":[]}]}', {}, "FP33"),
            (b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,-16],"data":[]}]}', {}, "shape"),
            (
                b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,16],"data":["a"]}]}',
                {},
                "FP32",
            ),
            (b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,16]}]}', {}, "neither 'data'"),
            (
                b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,16],'
                b'"parameters":{"binary_data_size":64}}]}' + b"\0" * 10,
                {"Inference-Header-Content-Length": "80"},
                "runs past the binary section",
            ),
            (b'{"inputs":[]}', {"Inference-Header-Content-Length": "900"}, "body has 13 bytes"),
            (b'{"inputs":[]}', {"Inference-Header-Content-Length": "x"}, "not an integer"),
        ],
        ids=[
            "bad-json",
            "not-object",
            "no-inputs",
            "bad-datatype",
            "negative-dim",
            "strings-as-floats",
            "no-data",
            "binary-lies",
            "header-too-long",
            "header-not-int",
        ],
    )
    def test_malformed_bodies_are_400_naming_the_problem(
        self, mlp_server: ServerProcess, body: bytes, headers: dict[str, str], fragment: str
    ) -> None:
        if body.startswith(b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,16],"parameters"'):
            headers = {"Inference-Header-Content-Length": str(len(body) - 10)}
        status, payload = raw_post(mlp_server, "/v2/models/mlp/infer", body, headers)
        assert status == 400, payload
        assert fragment in orjson.loads(payload)["error"]

    def test_body_over_the_limit_is_413(self, mlp_server: ServerProcess) -> None:
        status, payload = raw_post(mlp_server, "/v2/models/mlp/infer", b" " * 70_000)
        assert status == 413
        assert "exceeds the limit of 65536" in orjson.loads(payload)["error"]

    def test_unknown_route_and_method(self, mlp_server: ServerProcess) -> None:
        status, payload = raw_post(mlp_server, "/v3/whatever", b"")
        assert status == 404 and b"no route" in payload
        status, payload = raw_post(mlp_server, "/v2/health/ready", b"")
        assert status == 405 and b"use GET" in payload


def _request_count(server: ServerProcess) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    (line,) = [
        line
        for line in text.splitlines()
        if line.startswith("modelship_request_duration_seconds_count")
    ]
    return float(line.rsplit(" ", 1)[1])


class TestMetrics:
    def test_failed_requests_are_timed_too(self, mlp_server: ServerProcess) -> None:
        """A canary that fails fast must not look fast: every answered inference request, over
        REST and gRPC, failed or not, is in the latency histogram."""
        before = _request_count(mlp_server)
        wrong_shape = {
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
        }
        status, _ = raw_post(mlp_server, "/v2/models/mlp/infer", orjson.dumps(wrong_shape))
        assert status == 400
        status, _ = raw_post(mlp_server, "/v2/models/mlp/infer", b"{not json")
        assert status == 400
        inp = grpcclient.InferInput("x", [1, 3], "FP32")
        inp.set_data_from_numpy(np.ones((1, 3), np.float32))
        with pytest.raises(InferenceServerException):
            grpcclient.InferenceServerClient(mlp_server.grpc_url).infer("mlp", [inp])
        ok = httpclient.InferInput("x", [1, 16], "FP32")
        ok.set_data_from_numpy(np.ones((1, 16), np.float32))
        _client(mlp_server).infer("mlp", [ok])
        # Observed once the answer is out: the count may trail the client by a moment.
        wait_until(
            lambda: _request_count(mlp_server) >= before + 4, timeout=10, what="4 timed requests"
        )
        assert _request_count(mlp_server) == before + 4

    def test_own_registry_with_request_outcomes(self, mlp_server: ServerProcess) -> None:
        inp = httpclient.InferInput("x", [1, 16], "FP32")
        inp.set_data_from_numpy(np.ones((1, 16), np.float32))
        _client(mlp_server).infer("mlp", [inp])
        conn = http.client.HTTPConnection("127.0.0.1", mlp_server.http_port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        assert (
            'modelship_requests_total{model="mlp",outcome="success",revision="1",variant="model"}'
            in text
        )
        assert "modelship_request_duration_seconds_bucket" in text
        assert 'le="0.0001"' in text and 'le="10.0"' in text
        assert "modelship_queue_duration_seconds_bucket" in text
        assert "modelship_inference_duration_seconds_bucket" in text
        assert "modelship_batch_size_bucket" in text
        assert "modelship_requests_in_flight" in text
        # The default registry's process and GC collectors must not leak in.
        assert "python_gc_objects_collected_total" not in text
