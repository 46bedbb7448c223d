"""Typed settings of the serving runtime, filled from the `serve` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GraphOptimization = Literal["none", "basic", "extended", "all"]
FeedbackTask = Literal["auto", "classification", "regression"]


class ServerSettings(BaseModel):
    """Everything `modelship-runtime serve` can be told; defaults suit one model per pod."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: Path
    model_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    model_version: str = Field(default="1", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # None turns the gRPC front end off.
    grpc_port: int | None = Field(default=8081, ge=0, le=65535)
    # The HTTP/1.1 front end: the runtime's own (http1.py: httptools, no ASGI; the faster one,
    # docs/benchmarks.md) or uvicorn running the same routes through ASGI.
    http_server: Literal["modelship", "uvicorn"] = "modelship"
    # An idle keep-alive connection is closed after this long; 0 keeps it open.
    keep_alive_s: float = Field(default=5.0, ge=0.0, le=3600.0)

    # Batching is on only when both are positive: max_batch_size <= 1 or max_delay_ms == 0 is off.
    max_batch_size: int = Field(default=0, ge=0, le=65536)
    max_delay_ms: float = Field(default=0.0, ge=0.0, le=10_000.0)

    # None means: the container's CPU limit (cgroup quota), bounded by the CPUs we may run on.
    threads: int | None = Field(default=None, ge=1, le=1024)
    inter_op_threads: int = Field(default=1, ge=1, le=1024)
    graph_optimization: GraphOptimization = "all"
    execution_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    warmup_runs: int = Field(default=3, ge=0, le=10_000)
    # Where ONNX Runtime runs: on the event loop ("inline": no thread hand-off, best for small
    # models), on a worker thread ("thread": the loop keeps serving health checks and parsing
    # during long runs), or "auto": inline when a warm-up run of one row takes under
    # inline_threshold_ms.
    execution: Literal["auto", "inline", "thread"] = "auto"
    inline_threshold_ms: float = Field(default=1.0, ge=0.0)

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Admission: requests admitted at once (running and queued); more get 503 at once, so a
    # flood sheds instead of queueing without bound.
    max_in_flight: int = Field(default=128, ge=1, le=1_000_000)
    # A request that cannot start within this long gets 503 and never runs. A client may ask
    # for less (REST header DEADLINE_HEADER, gRPC's own deadline), never for more.
    deadline_ms: float = Field(default=30_000.0, gt=0.0, le=3_600_000.0)
    # The Retry-After of a 503 from admission or a deadline, in whole seconds.
    retry_after_s: int = Field(default=1, ge=0, le=3600)

    feedback_max_entries: int = Field(default=50_000, ge=0)
    # Estimated bytes of predictions held for labels (feedback.held_bytes); the oldest go first.
    feedback_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    feedback_retention_s: float = Field(default=3600.0, ge=0.0)
    feedback_max_rows: int = Field(default=1024, ge=1)
    feedback_output: str | None = None
    feedback_task: FeedbackTask = "auto"
    # The key signing prediction tokens (a mounted Secret); None: no tokens, labels by id only.
    feedback_key_file: Path | None = None
    # MACs of counted tokens remembered against replays (per pod, oldest dropped first).
    feedback_replay_entries: int = Field(default=100_000, ge=0)

    # Seconds between readiness turning false and the listeners closing, so that endpoints
    # controllers stop routing to us before we stop accepting.
    drain_delay_s: float = Field(default=0.0, ge=0.0, le=600.0)
    drain_timeout_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _tokens_need_retention(self) -> ServerSettings:
        if self.feedback_key_file is not None:
            if self.feedback_retention_s <= 0:
                raise ValueError("--feedback-key-file needs --feedback-retention-s > 0")
            if len(self.model_version.encode()) > 255:
                raise ValueError("--feedback-key-file needs a --version of at most 255 bytes")
        return self

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1 and self.max_delay_ms > 0
