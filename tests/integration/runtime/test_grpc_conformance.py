"""Conformance of the gRPC front end, driven by the unmodified tritonclient.grpc client."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.integration.runtime.onnx_models import ONNX_TYPES
from tests.integration.runtime.server_process import ServerProcess
from tests.integration.runtime.test_http_conformance import _sample


def _client(server: ServerProcess) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.grpc_url)


def test_health_and_metadata(mlp_server: ServerProcess) -> None:
    client = _client(mlp_server)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.get_server_metadata(as_json=True)["name"] == "modelship"
    meta = client.get_model_metadata("mlp", "1", as_json=True)
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "16"]}]
    config = client.get_model_config("mlp", as_json=True)["config"]
    assert config["platform"] == "onnxruntime_onnx"


def test_unknown_model_is_not_found(mlp_server: ServerProcess) -> None:
    with pytest.raises(InferenceServerException) as err:
        _client(mlp_server).get_model_metadata("nope")
    assert err.value.status() == "StatusCode.NOT_FOUND"
    assert "unknown model 'nope'" in err.value.message()


def test_mlp_matches_onnxruntime(mlp_server: ServerProcess, mlp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    expected = ort.InferenceSession(str(mlp_path)).run(None, {"x": x})
    inp = grpcclient.InferInput("x", [3, 16], "FP32")
    inp.set_data_from_numpy(x)
    result = _client(mlp_server).infer("mlp", [inp], request_id="g-1")
    assert result.get_response().id == "g-1"
    np.testing.assert_allclose(result.as_numpy("scores"), expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), expected[1])


def test_every_datatype_round_trips(identity_server: ServerProcess) -> None:
    rng = np.random.default_rng(11)
    inputs, arrays = [], {}
    for dt in ONNX_TYPES:
        arrays[dt] = _sample(dt, 2, rng)
        inp = grpcclient.InferInput(f"in_{dt}", [2, 3], dt)
        inp.set_data_from_numpy(arrays[dt])
        inputs.append(inp)
    result = _client(identity_server).infer("types", inputs)
    for dt, sent in arrays.items():
        got = result.as_numpy(f"out_{dt}")
        if dt == "BYTES":
            assert [v.decode() for v in got.reshape(-1)] == [v.decode() for v in sent.reshape(-1)]
        else:
            assert got.dtype == sent.dtype, dt
            np.testing.assert_array_equal(got, sent, err_msg=dt)


def test_typed_contents_instead_of_raw_bytes(two_input_server: ServerProcess) -> None:
    """Clients other than tritonclient may fill `contents` rather than raw_input_contents."""
    stub = service_pb2_grpc.GRPCInferenceServiceStub(
        grpc.insecure_channel(two_input_server.grpc_url)
    )
    tensor = service_pb2.ModelInferRequest.InferInputTensor
    request = service_pb2.ModelInferRequest(
        model_name="pair",
        inputs=[
            tensor(
                name="a",
                datatype="FP32",
                shape=[1, 4],
                contents=service_pb2.InferTensorContents(fp32_contents=[1, 2, 3, 4]),
            ),
            tensor(
                name="b",
                datatype="FP32",
                shape=[1, 4],
                contents=service_pb2.InferTensorContents(fp32_contents=[2, 2, 2, 2]),
            ),
        ],
    )
    response = stub.ModelInfer(request, timeout=10)
    names = [o.name for o in response.outputs]
    product = np.frombuffer(response.raw_output_contents[names.index("product")], np.float32)
    np.testing.assert_array_equal(product, [2, 4, 6, 8])


def test_several_inputs_and_errors(two_input_server: ServerProcess) -> None:
    client = _client(two_input_server)
    a = np.ones((2, 4), np.float32)
    ia = grpcclient.InferInput("a", [2, 4], "FP32")
    ia.set_data_from_numpy(a)
    ib = grpcclient.InferInput("b", [2, 4], "FP32")
    ib.set_data_from_numpy(a * 3)
    result = client.infer(
        "pair", [ia, ib], model_version="3", outputs=[grpcclient.InferRequestedOutput("sum")]
    )
    np.testing.assert_array_equal(result.as_numpy("sum"), a * 4)
    assert result.as_numpy("product") is None

    with pytest.raises(InferenceServerException) as err:
        client.infer("pair", [ia])
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "missing input(s) 'b'" in err.value.message()

    bad = grpcclient.InferInput("b", [2, 5], "FP32")
    bad.set_data_from_numpy(np.ones((2, 5), np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer("pair", [ia, bad])
    assert "input 'b' has shape [2, 5]" in err.value.message()

    with pytest.raises(InferenceServerException) as err:
        client.infer("pair", [ia, ib], model_version="9")
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_raw_contents_that_lie_about_length(two_input_server: ServerProcess) -> None:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(
        grpc.insecure_channel(two_input_server.grpc_url)
    )
    tensor = service_pb2.ModelInferRequest.InferInputTensor
    request = service_pb2.ModelInferRequest(
        model_name="pair",
        inputs=[
            tensor(name="a", datatype="FP32", shape=[1, 4]),
            tensor(name="b", datatype="FP32", shape=[1, 4]),
        ],
        raw_input_contents=[b"\0" * 16, b"\0" * 12],
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw contents have 12 bytes" in (err.value.details() or "")
