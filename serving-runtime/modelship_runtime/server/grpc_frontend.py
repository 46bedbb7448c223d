"""The gRPC front end: KServe V2 `GRPCInferenceService` on grpc.aio, over the shared data plane."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from modelship_runtime.server.dataplane import DataPlane
from modelship_runtime.server.datatypes import (
    decode_bytes_tensor,
    encode_bytes_tensor,
    numpy_dtype,
)
from modelship_runtime.server.errors import BadRequest, InferenceError, Overloaded
from modelship_runtime.server.protocol import InferenceRequest, RequestedOutput, Tensor
from modelship_runtime.server.rest_codec import MAX_ELEMENTS

log = logging.getLogger(__name__)

_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

# Which typed `contents` field carries each datatype when the client does not use raw bytes.
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_CONFIG_TYPE = {
    "BOOL": model_config_pb2.TYPE_BOOL,
    "UINT8": model_config_pb2.TYPE_UINT8,
    "UINT16": model_config_pb2.TYPE_UINT16,
    "UINT32": model_config_pb2.TYPE_UINT32,
    "UINT64": model_config_pb2.TYPE_UINT64,
    "INT8": model_config_pb2.TYPE_INT8,
    "INT16": model_config_pb2.TYPE_INT16,
    "INT32": model_config_pb2.TYPE_INT32,
    "INT64": model_config_pb2.TYPE_INT64,
    "FP16": model_config_pb2.TYPE_FP16,
    "FP32": model_config_pb2.TYPE_FP32,
    "FP64": model_config_pb2.TYPE_FP64,
    "BYTES": model_config_pb2.TYPE_STRING,
}


def _parameters(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        kind = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, kind) if kind else None
    return out


def _response_parameters(params: dict[str, Any]) -> dict[str, Any]:
    # InferParameter holds scalars only: a list of strings (the prediction tokens) travels
    # joined with "," (not in the base64url alphabet).
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            out[key] = service_pb2.InferParameter(bool_param=value)
        elif isinstance(value, int):
            out[key] = service_pb2.InferParameter(int64_param=value)
        elif isinstance(value, float):
            out[key] = service_pb2.InferParameter(double_param=value)
        elif isinstance(value, list):
            out[key] = service_pb2.InferParameter(string_param=",".join(map(str, value)))
        else:
            out[key] = service_pb2.InferParameter(string_param=str(value))
    return out


def _tensor_from_raw(
    raw: bytes, datatype: str, shape: tuple[int, ...], count: int, where: str
) -> npt.NDArray[Any]:
    if datatype == "BYTES":
        return decode_bytes_tensor(raw, count, where).reshape(shape)
    dtype = numpy_dtype(datatype)
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"{where}: raw contents have {len(raw)} bytes but shape {list(shape)} of {datatype} "
            f"needs {count * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _tensor_from_contents(
    contents: Any, datatype: str, shape: tuple[int, ...], count: int, where: str
) -> npt.NDArray[Any]:
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise BadRequest(f"{where}: {datatype} must be sent in raw_input_contents")
    values = getattr(contents, field)
    if len(values) != count:
        raise BadRequest(
            f"{where}: contents have {len(values)} elements but shape {list(shape)} needs {count}"
        )
    if datatype == "BYTES":
        array: npt.NDArray[Any] = np.empty(count, dtype=np.object_)
        array[:] = list(values)
        return array.reshape(shape)
    try:
        return np.asarray(values, dtype=numpy_dtype(datatype)).reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{where}: contents do not fit {datatype}: {exc}") from None


def decode_infer_request(request: Any) -> InferenceRequest:
    """Turn a ModelInferRequest into the data plane's request; problems are BadRequests."""
    if not request.inputs:
        raise BadRequest("the request has no inputs")
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw_contents)} entries for {len(request.inputs)} inputs"
        )
    inputs: list[Tensor] = []
    for index, item in enumerate(request.inputs):
        where = f"input {item.name!r}"
        if not item.name:
            raise BadRequest(f"inputs[{index}] has no name")
        datatype = item.datatype
        numpy_dtype(datatype)
        shape = tuple(int(d) for d in item.shape)
        if any(d < 0 for d in shape):
            raise BadRequest(f"{where}: shape {list(shape)} has a negative dimension")
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            raise BadRequest(
                f"{where}: shape {list(shape)} has {count} elements; limit {MAX_ELEMENTS}"
            )
        if raw_contents:
            array = _tensor_from_raw(raw_contents[index], datatype, shape, count, where)
        else:
            array = _tensor_from_contents(item.contents, datatype, shape, count, where)
        inputs.append(Tensor(item.name, datatype, array))
    outputs = [RequestedOutput(o.name) for o in request.outputs] or None
    return InferenceRequest(
        inputs=inputs,
        id=request.id or None,
        outputs=outputs,
        parameters=_parameters(request.parameters),
    )


def _raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        return encode_bytes_tensor(tensor.data)
    return np.ascontiguousarray(tensor.data).tobytes()


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """Implements the calls a V2 client needs; the rest answer UNIMPLEMENTED."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane

    async def _fail(self, context: Any, exc: InferenceError) -> None:
        code = _STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
        if isinstance(exc, Overloaded):
            # UNAVAILABLE is the code gRPC clients retry; the trailer says when (as REST's
            # Retry-After header does).
            retry = (("retry-after", str(exc.retry_after_s)),)
            await context.abort(code, exc.message, trailing_metadata=retry)
        await context.abort(code, exc.message)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=self.dp.live)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.dp.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            ready = self.dp.model_ready(request.name, request.version or None)
        except InferenceError as exc:
            await self._fail(context, exc)
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self.dp.server_metadata()
        return service_pb2.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            meta = self.dp.model_metadata(request.name, request.version or None)
        except InferenceError as exc:
            await self._fail(context, exc)
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        try:
            meta = self.dp.model_metadata(request.name, request.version or None)
        except InferenceError as exc:
            await self._fail(context, exc)
        batching = self.dp.settings.batching
        config = model_config_pb2.ModelConfig(
            name=meta["name"],
            platform="onnxruntime_onnx",
            max_batch_size=self.dp.settings.max_batch_size if batching else 0,
            input=[
                model_config_pb2.ModelInput(
                    name=t["name"], data_type=_CONFIG_TYPE[t["datatype"]], dims=t["shape"]
                )
                for t in meta["inputs"]
            ],
            output=[
                model_config_pb2.ModelOutput(
                    name=t["name"], data_type=_CONFIG_TYPE[t["datatype"]], dims=t["shape"]
                )
                for t in meta["outputs"]
            ],
        )
        return service_pb2.ModelConfigResponse(config=config)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            try:
                decoded = decode_infer_request(request)
            except InferenceError as exc:
                self.dp.count_failure(exc)
                raise
            # gRPC's own deadline, when the client set one (time_remaining() is None otherwise).
            deadline = self.dp.deadline(started, context.time_remaining())
            response = await self.dp.infer(
                request.model_name, request.model_version or None, decoded, deadline
            )
            out_tensor = service_pb2.ModelInferResponse.InferOutputTensor
            return service_pb2.ModelInferResponse(
                model_name=response.model_name,
                model_version=response.model_version,
                id=response.id or "",
                outputs=[
                    out_tensor(name=t.name, datatype=t.datatype, shape=list(t.shape))
                    for t in response.outputs
                ],
                raw_output_contents=[_raw(t) for t in response.outputs],
                parameters=_response_parameters(response.parameters),
            )
        except InferenceError as exc:
            await self._fail(context, exc)
        finally:
            self.dp.observe_request(started)


def build_grpc_server(dataplane: DataPlane, max_message_bytes: int) -> grpc.aio.Server:
    """A grpc.aio server with the inference service registered (not yet bound or started)."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane), server
    )
    return server
