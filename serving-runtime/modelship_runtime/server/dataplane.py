"""The protocol-agnostic data plane: health, metadata, validation, inference, feedback."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelship_runtime.server.batching import (
    Batcher,
    DeadlineExceeded,
    Execution,
    Feeds,
    Outputs,
    RunFn,
    batch_key,
    run_before,
)
from modelship_runtime.server.datatypes import to_ort_strings
from modelship_runtime.server.errors import (
    BadRequest,
    InferenceError,
    ModelNotFound,
    NotReady,
    Overloaded,
)
from modelship_runtime.server.feedback import (
    FeedbackResult,
    PredictionLog,
    TokenLedger,
    apply_feedback,
    extract_prediction,
    parse_feedback,
)
from modelship_runtime.server.metrics import FastCounter, RuntimeMetrics
from modelship_runtime.server.model import OnnxModel
from modelship_runtime.server.protocol import (
    ENCODING_PARAMETERS,
    InferenceRequest,
    InferenceResponse,
    Tensor,
)
from modelship_runtime.server.settings import ServerSettings
from modelship_runtime.server.tokens import TokenCodec

log = logging.getLogger(__name__)

SERVER_NAME = "modelship"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ("binary_tensor_data", "feedback")
# The response parameter carrying one signed prediction token per row of the feedback output.
TOKENS_PARAMETER = "modelship_tokens"


def _client_error_from_ort(exc: Exception) -> bool:
    # ONNX Runtime reports bad feeds (e.g. a dimension the graph rejects) as InvalidArgument.
    return type(exc).__name__ in {"InvalidArgument", "INVALID_ARGUMENT"}


class DataPlane:
    """One served model; the REST and gRPC front ends only decode, call, and encode."""

    def __init__(
        self, settings: ServerSettings, metrics: RuntimeMetrics, token_key: bytes | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: OnnxModel | None = None
        self.ready = False
        self.draining = False
        # One worker: the model runs on one thread at a time (metrics.model_runs relies on it).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort")
        self._batcher: Batcher | None = None
        self.predictions = PredictionLog(
            metrics,
            max_entries=settings.feedback_max_entries,
            retention_s=settings.feedback_retention_s,
            max_bytes=settings.feedback_max_bytes,
        )
        self.tokens: TokenCodec | None = None
        self.ledger: TokenLedger | None = None
        if token_key is not None:
            model, revision, variant = metrics.labels
            self.tokens = TokenCodec(token_key, model, revision, variant)
            self.ledger = TokenLedger(
                self.tokens,
                retention_s=settings.feedback_retention_s,
                max_seen=settings.feedback_replay_entries,
            )
        self._feedback_output: int | None = None
        self.inline = False
        self._run: RunFn | None = None
        self._in_flight = 0
        # Requests handed to the worker thread and not back yet (one runs, the rest queue).
        self._awaiting_thread = 0
        metrics.queue_depth = self._queue_depth
        self._idle = asyncio.Event()
        self._idle.set()

    # --- lifecycle -------------------------------------------------------------------------

    def attach(self, model: OnnxModel) -> None:
        """Take a loaded, warmed-up model and start serving it."""
        self.model = model
        mode = self.settings.execution
        if mode == "auto":
            fast = model.warm_run_s * 1e3 < self.settings.inline_threshold_ms
            mode = "inline" if fast else "thread"
        self.inline = mode == "inline"
        log.info("inference runs %s", "on the event loop" if self.inline else "on a worker thread")
        self._run = _counted(model.run, self.metrics.model_runs)
        if self.settings.batching and model.batchable:
            self._batcher = Batcher(
                self._run,
                None if self.inline else self._executor,
                max_batch_size=self.settings.max_batch_size,
                max_delay_s=self.settings.max_delay_ms / 1000.0,
                in_flight=self._count_in_flight,
            )
        elif self.settings.batching:
            log.warning("batching requested but the model has a fixed first dimension; off")
        wanted = self.settings.feedback_output
        names = [s.name for s in model.outputs]
        if wanted is not None and wanted not in names:
            raise ValueError(f"--feedback-output {wanted!r} is not an output of the model: {names}")
        self._feedback_output = names.index(wanted) if wanted else 0
        self.ready = True
        self.metrics.ready.set(1)

    def _count_in_flight(self) -> int:
        return self._in_flight

    def _queue_depth(self) -> int:
        if self._batcher is not None:
            return self._batcher.queued
        return max(self._awaiting_thread - 1, 0)

    def deadline(self, arrived: float, requested_s: float | None = None) -> float:
        """When (perf_counter) a request that arrived at `arrived` must have started: the
        server's deadline, or the client's when that is sooner."""
        budget = self.settings.deadline_ms / 1000.0
        if requested_s is not None:
            budget = min(budget, max(requested_s, 0.0))
        return arrived + budget

    def start_draining(self) -> None:
        self.draining = True
        self.ready = False
        self.metrics.ready.set(0)

    async def wait_idle(self, within_s: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        self._executor.shutdown(wait=True)

    # --- health and metadata --------------------------------------------------------------

    @property
    def live(self) -> bool:
        return True

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.settings.model_name:
            raise ModelNotFound(
                f"unknown model {name!r}; this server serves {self.settings.model_name!r}"
            )
        if version not in (None, "", self.settings.model_version):
            raise ModelNotFound(
                f"unknown version {version!r} of model {name!r}; served version is "
                f"{self.settings.model_version!r}"
            )

    def model_ready(self, name: str, version: str | None) -> bool:
        self.check_model(name, version)
        return self.ready

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}

    def _loaded(self) -> OnnxModel:
        if self.model is None:
            raise NotReady(f"model {self.settings.model_name!r} is still loading")
        return self.model

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        self.check_model(name, version)
        model = self._loaded()
        return {
            "name": self.settings.model_name,
            "versions": [self.settings.model_version],
            "platform": "onnxruntime_onnx",
            "inputs": [s.metadata() for s in model.inputs],
            "outputs": [s.metadata() for s in model.outputs],
        }

    # --- inference --------------------------------------------------------------------------

    def _feeds(self, model: OnnxModel, request: InferenceRequest) -> Feeds:
        feeds: Feeds = {}
        for tensor in request.inputs:
            spec = model.input_by_name.get(tensor.name)
            if spec is None:
                expected = ", ".join(repr(s.name) for s in model.inputs)
                raise BadRequest(f"unknown input {tensor.name!r}; the model takes {expected}")
            if tensor.name in feeds:
                raise BadRequest(f"input {tensor.name!r} is given more than once")
            if tensor.datatype != spec.datatype:
                raise BadRequest(
                    f"input {tensor.name!r} has datatype {tensor.datatype}; the model expects "
                    f"{spec.datatype}"
                )
            shape = tensor.data.shape
            if len(shape) != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
            ):
                raise BadRequest(
                    f"input {tensor.name!r} has shape {list(shape)}; the model expects "
                    f"{list(spec.shape)} (-1 is any size)"
                )
            data = tensor.data
            if spec.datatype == "BYTES":
                data = to_ort_strings(data)
            feeds[tensor.name] = data
        missing = [s.name for s in model.inputs if s.name not in feeds]
        if missing:
            raise BadRequest(f"missing input(s) {', '.join(repr(m) for m in missing)}")
        if self._batcher is not None:
            rows = {a.shape[0] for a in feeds.values()}
            if len(rows) != 1:
                raise BadRequest(
                    f"inputs disagree on the batch dimension: {sorted(rows)}; each input must "
                    "have the same number of rows"
                )
        return feeds

    def _selected_outputs(self, model: OnnxModel, request: InferenceRequest) -> list[int]:
        if not request.outputs:
            return list(range(len(model.outputs)))
        indices: list[int] = []
        for requested in request.outputs:
            spec = model.output_by_name.get(requested.name)
            if spec is None:
                offered = ", ".join(repr(s.name) for s in model.outputs)
                raise BadRequest(f"unknown output {requested.name!r}; the model offers {offered}")
            indices.append(model.output_names.index(requested.name))
        return indices

    async def _execute(self, feeds: Feeds, request: InferenceRequest, deadline: float) -> Execution:
        if self._batcher is not None:
            params = {k: v for k, v in request.parameters.items() if k not in ENCODING_PARAMETERS}
            params_key = orjson.dumps(params, option=orjson.OPT_SORT_KEYS) if params else b""
            return await self._batcher.submit(feeds, batch_key(feeds, params_key), deadline)
        run = self._run
        assert run is not None
        arrived = time.perf_counter()
        if self.inline:
            # Runs now, so it starts in time unless parsing alone took the whole deadline.
            outputs, inference_s = run_before(deadline, arrived, run, [feeds])
            return Execution(outputs[0], 0.0, inference_s, 1)
        self._awaiting_thread += 1
        try:
            outputs, inference_s = await asyncio.get_running_loop().run_in_executor(
                self._executor, run_before, deadline, arrived, run, [feeds]
            )
        finally:
            self._awaiting_thread -= 1
        queue_s = max(0.0, time.perf_counter() - arrived - inference_s)
        return Execution(outputs[0], queue_s, inference_s, 1)

    def _shed(self, exc: Overloaded) -> Overloaded:
        self.metrics.shed[exc.reason].inc()
        return exc

    @property
    def may_wait(self) -> bool:
        """Whether a request can wait for the model (a batch queue or the worker thread), so a
        client leaving meanwhile is worth watching for."""
        return self._batcher is not None or not self.inline

    def count_failure(self, exc: InferenceError) -> None:
        """Front ends report requests that failed before reaching `infer` (e.g. bad JSON)."""
        outcome = "client_error" if exc.status < 500 else "server_error"
        self.metrics.requests[outcome].inc()

    def observe_request(self, started: float) -> None:
        """Front ends time every inference request, failed ones included, from its arrival to
        its encoded answer: a canary that fails fast must not look fast."""
        self.metrics.request_seconds.observe(time.perf_counter() - started)

    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        deadline: float | None = None,
    ) -> InferenceResponse:
        """Serve one request; `deadline` (perf_counter, from `self.deadline`) is when it must
        have started, by default the server's deadline from now."""
        metrics = self.metrics
        if deadline is None:
            deadline = self.deadline(time.perf_counter())
        if self._in_flight >= self.settings.max_in_flight:
            # Refused before any work: a flood costs one comparison per excess request.
            exc = self._shed(
                Overloaded(
                    f"the server is at its limit of {self.settings.max_in_flight} requests in "
                    "flight; retry later",
                    self.settings.retry_after_s,
                    "queue_full",
                )
            )
            self.count_failure(exc)
            raise exc
        self._in_flight += 1
        self._idle.clear()
        metrics.in_flight.inc()
        try:
            self.check_model(name, version)
            # While draining, requests still routed to us are served: readiness only tells
            # load balancers to stop sending more.
            if not self.ready and not self.draining:
                raise NotReady(f"model {name!r} is not ready: it is still loading")
            model = self._loaded()
            feeds = self._feeds(model, request)
            selected = self._selected_outputs(model, request)
            try:
                execution = await self._execute(feeds, request, deadline)
            except InferenceError:
                raise
            except DeadlineExceeded as exc:
                raise self._shed(
                    Overloaded(
                        f"the model was busy: {exc}; retry later",
                        self.settings.retry_after_s,
                        "deadline",
                    )
                ) from None
            except Exception as exc:
                if _client_error_from_ort(exc):
                    raise BadRequest(f"the model rejected the inputs: {exc}") from exc
                log.exception("inference failed")
                raise InferenceError(f"inference failed: {type(exc).__name__}: {exc}") from exc
            outputs = [
                Tensor(
                    model.outputs[i].name,
                    model.outputs[i].datatype,
                    _as_served(execution.outputs[i]),
                )
                for i in selected
            ]
            parameters = self._track_prediction(request.id, execution.outputs)
            metrics.queue_seconds.observe(execution.queue_s)
            metrics.inference_seconds.observe(execution.inference_s)
            metrics.batch_size.observe(execution.batch_size)
            metrics.requests["success"].inc()
            return InferenceResponse(
                model_name=self.settings.model_name,
                model_version=self.settings.model_version,
                outputs=outputs,
                id=request.id,
                parameters=parameters,
            )
        except InferenceError as exc:
            self.count_failure(exc)
            raise
        finally:
            self._in_flight -= 1
            metrics.in_flight.dec()
            if self._in_flight == 0:
                self._idle.set()
            if self._batcher is not None:
                self._batcher.notify()

    def _track_prediction(self, request_id: str | None, outputs: Outputs) -> dict[str, Any]:
        """Keep the prediction under its id and/or sign it; returns the response parameters."""
        keep = request_id is not None and self.predictions.enabled
        if self._feedback_output is None or not (keep or self.tokens is not None):
            return {}
        prediction = extract_prediction(
            outputs[self._feedback_output],
            self.settings.feedback_task,
            self.settings.feedback_max_rows,
            self.predictions.clock(),
        )
        if prediction is None:
            return {}
        if keep:
            assert request_id is not None
            self.predictions.record(request_id, prediction)
        if self.tokens is None:
            return {}
        return {TOKENS_PARAMETER: self.tokens.issue(prediction.task, prediction.values)}

    def feedback(self, name: str, version: str | None, body: Any) -> FeedbackResult:
        self.check_model(name, version)
        if not self.predictions.enabled and self.ledger is None:
            raise BadRequest(
                "feedback is off: --feedback-max-entries, --feedback-max-bytes or "
                "--feedback-retention-s is 0 and "
                "there is no --feedback-key-file"
            )
        return apply_feedback(self.predictions, self.metrics, parse_feedback(body), self.ledger)


def _counted(run: RunFn, runs: FastCounter) -> RunFn:
    """`run`, counting each execution (RuntimeMetrics.model_runs: one thread ever runs it)."""

    def counted(feeds: Feeds) -> Outputs:
        runs.inc()
        return run(feeds)

    return counted


def _as_served(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # ONNX Runtime may hand back non-contiguous views after a split; encoders want contiguous.
    return np.ascontiguousarray(array) if array.dtype != np.object_ else array


__all__ = ["EXTENSIONS", "SERVER_NAME", "TOKENS_PARAMETER", "DataPlane"]
