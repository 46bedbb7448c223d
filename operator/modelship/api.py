"""The ModelDeployment API (modelship.io/v1alpha1): spec and status as pydantic models."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "modelship.io"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]

# Children names append "-build-<10 hex>" (and pod-name suffixes) to the CR name; keeping
# the CR name short keeps every child a valid DNS-1035 label (Service) of <= 63 characters.
MAX_NAME_LENGTH = 45

Format = Literal["onnx", "sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "keras"]
# Formats whose model file declares its own inputs (no spec.model.signature needed).
SELF_DESCRIBING_FORMATS = ("onnx", "tensorflow", "keras")
# Formats built by the TensorFlow build image (operator setting tensorflow_build_image).
TENSORFLOW_FORMATS = ("tensorflow", "keras")
GraphOptimization = Literal["none", "basic", "extended", "all"]
Quantization = Literal["none", "dynamic-int8", "static-int8", "fp16", "auto"]
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Phase = Literal["Building", "Deploying", "Progressing", "Ready", "Degraded", "Failed"]
ConditionStatus = Literal["True", "False", "Unknown"]

URI_PATTERN = (
    r"^(s3://[^/]+/.+|gs://[^/]+/.+|https?://.+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+|file:///.+)$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# Gateway API's Hostname: a DNS name, optionally with one leading wildcard label.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": "A Kubernetes quantity such as 500m, 1 or 512Mi.",
        }
    ),
]


def rule(expression: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """Build one CEL validation rule for x-kubernetes-validations."""
    out: dict[str, Any] = {"rule": expression, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


class Model(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# --- spec -----------------------------------------------------------------------------------


class TensorSpec(Model):
    """One named tensor of the model's signature."""

    name: str = Field(min_length=1, max_length=128, description="Name of the tensor.")
    datatype: Datatype = Field(description="Element type, as in the Open Inference Protocol v2.")
    shape: list[Annotated[int, Field(ge=-1)]] = Field(
        max_length=8, description="Dimensions; -1 marks a variable dimension (e.g. the batch)."
    )


class Signature(Model):
    """Inputs and outputs of the model, for formats where they cannot be inferred."""

    inputs: list[TensorSpec] = Field(
        min_length=1, max_length=64, description="Input tensors, in the model's order."
    )
    outputs: list[TensorSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Output tensors; inferred from the converted model when empty.",
    )


class ModelSource(Model):
    """Where the model comes from and what it is."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.format in ["
                    + ", ".join(f"'{f}'" for f in SELF_DESCRIBING_FORMATS)
                    + "] || has(self.signature)",
                    "spec.model.signature is required when spec.model.format is sklearn, "
                    "xgboost, lightgbm or pytorch (the converter needs the input shapes)",
                    ".signature",
                ),
            ]
        }
    )

    uri: str = Field(
        max_length=2048,
        pattern=URI_PATTERN,
        description="Location of the model: s3://bucket/key, gs://bucket/key, http(s)://..., "
        "pvc://claim/path (a PersistentVolumeClaim in the same namespace) or file:///path "
        "(a path on the node; development only).",
    )
    format: Format = Field(
        default="onnx",
        description="Serialization format of the model. tensorflow: a SavedModel folder packed "
        "as tar, tar.gz or zip; keras: a .keras or .h5 file (both built by the TensorFlow "
        "build image).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[a-f0-9]{64}$",
        description="Expected SHA-256 of the downloaded model; the build fails on a mismatch.",
    )
    credentials_secret: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Secret in the same namespace whose keys become environment variables of the "
        "build step only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, "
        "AWS_REGION; for gs:// HMAC keys GCS_ACCESS_KEY_ID, GCS_SECRET_ACCESS_KEY). Service "
        "account JSON (GOOGLE_APPLICATION_CREDENTIALS) is not supported.",
    )
    signature: Signature | None = Field(
        default=None, description="Input and output tensors, when not inferable from the model."
    )


class Validation(Model):
    """Golden data set that proves an optimized variant still agrees with the original."""

    dataset: str = Field(
        max_length=2048,
        pattern=URI_PATTERN,
        description="URI of an .npz file with arrays x (inputs) and y (labels or targets).",
    )
    metric: Literal["accuracy", "f1", "rmse"] = Field(
        default="accuracy", description="Metric compared between the original and each variant."
    )
    max_accuracy_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest tolerated drop of the metric versus the original model.",
    )


class Resources(Model):
    """Requests and limits of a container, merged key by key over the operator's defaults."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Minimum resources (cpu, memory, ...) reserved for the container.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Maximum resources (cpu, memory, ...) of the container.",
    )


class Optimization(Model):
    """How the build optimizes the model before it is served."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.quantization != 'static-int8' || has(self.calibrationData)",
                    "spec.optimization.calibrationData is required when quantization is "
                    "static-int8",
                    ".calibrationData",
                ),
                rule(
                    "self.quantization != 'auto' || has(self.validation)",
                    "spec.optimization.validation is required when quantization is auto "
                    "(variants are selected by accuracy)",
                    ".validation",
                ),
            ]
        }
    )

    graph_optimization: GraphOptimization = Field(
        default="all", description="ONNX Runtime graph optimization level baked into the artifact."
    )
    quantization: Quantization = Field(
        default="none",
        description="Quantization of the weights; auto builds every variant and keeps the "
        "fastest one within the validation's accuracy budget.",
    )
    calibration_data: str | None = Field(
        default=None,
        max_length=2048,
        pattern=URI_PATTERN,
        description="URI of an .npz file with representative inputs for static quantization.",
    )
    validation: Validation | None = Field(
        default=None, description="Accuracy gate applied to every optimized variant."
    )
    resources: Resources | None = Field(
        default=None,
        description="Requests and limits of the build container (the operator's defaults "
        "otherwise). Not part of the revision: they change how fast a build runs, not what it "
        "makes.",
    )


class Batching(Model):
    """Server-side dynamic batching."""

    max_batch_size: int = Field(
        default=8, ge=1, le=4096, description="Largest batch the server forms; 1 disables batching."
    )
    max_delay_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest time a request waits for others to join its batch, in milliseconds.",
    )


# The serving runtime's own bounds (modelship_runtime.server.settings): the CRD refuses what a
# pod would refuse to start with.
MAX_REQUEST_BYTES_LIMIT = 1024**3


class RequestLimits(Model):
    """What one serving pod admits; past it a request is refused at once (REST 503 with
    Retry-After, gRPC UNAVAILABLE) instead of queueing without bound."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "duration(self.deadline) > duration('0s') "
                    "&& duration(self.deadline) <= duration('1h')",
                    "spec.runtime.requestLimits.deadline must be more than 0s and at most 1h",
                    ".deadline",
                ),
            ]
        }
    )

    max_in_flight: int = Field(
        default=128,
        ge=1,
        le=1_000_000,
        description="Requests one pod admits at once, running and queued; the next gets 503 "
        "with Retry-After before any work. With batching, keep it at least maxBatchSize.",
    )
    deadline: str = Field(
        default="30s",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Longest time an admitted request may wait to start; past it, 503 and the "
        "model never runs it. A client may ask for less (header x-modelship-deadline-ms, gRPC's "
        "own deadline), never for more.",
    )
    retry_after_seconds: int = Field(
        default=1, ge=0, le=3600, description="Retry-After of those refusals, in seconds."
    )
    max_request_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        le=MAX_REQUEST_BYTES_LIMIT,
        description="Largest REST body and gRPC message a pod accepts, in bytes; larger ones "
        "get 413 (gRPC RESOURCE_EXHAUSTED).",
    )


class Runtime(Model):
    """The serving runtime."""

    type: Literal["onnxruntime", "triton"] = Field(
        default="onnxruntime", description="Inference server that serves the built artifact."
    )
    batching: Batching = Field(
        default_factory=Batching, description="Server-side dynamic batching."
    )
    threads: int = Field(
        default=1, ge=1, le=256, description="Intra-op threads of ONNX Runtime per serving pod."
    )
    resources: Resources | None = Field(
        default=None, description="Requests and limits of the serving container."
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Runtime image override for this model (build and serving); the operator's "
        "default otherwise.",
    )
    request_limits: RequestLimits = Field(
        default_factory=RequestLimits,
        description="Admission, deadline and size limits of each serving pod. Not part of the "
        "revision: a change rolls the current revision's pods in place, without a build.",
    )


class ScalingTargets(Model):
    """Per-replica targets of the built-in autoscaler; the largest recommendation wins."""

    concurrency_per_replica: float | None = Field(
        default=None,
        gt=0,
        description="Requests in flight per ready replica (the primary load signal).",
    )
    requests_per_second_per_replica: float | None = Field(
        default=None, gt=0, description="Request rate per ready replica."
    )
    p95_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="95th percentile latency in milliseconds; only ever adds replicas, and only "
        "while the model has traffic.",
    )


# The API's ceiling on replicas, and the autoscaler's when maxReplicas is unset.
REPLICAS_LIMIT = 1000


class Scaling(Model):
    """Replica bounds and the built-in autoscaler."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "spec.scaling.minReplicas must be <= spec.scaling.maxReplicas",
                    ".minReplicas",
                ),
                rule(
                    "duration(self.interval) >= duration('1s') "
                    "&& duration(self.interval) <= duration('10m')",
                    "spec.scaling.interval must be between 1s and 10m",
                    ".interval",
                ),
                # Zero pods have no metrics to scale from, and nothing holds a request while a
                # pod starts: the autoscaler's floor is one replica.
                rule(
                    "!has(self.targets) || self.minReplicas >= 1",
                    "spec.scaling.minReplicas must be >= 1 while spec.scaling.targets is set: "
                    "the built-in autoscaler cannot wake a model from zero replicas (use KEDA "
                    "with an HTTP buffer to scale to zero)",
                    ".minReplicas",
                ),
                rule(
                    "!has(self.targets) || has(self.targets.concurrencyPerReplica) "
                    "|| has(self.targets.requestsPerSecondPerReplica) "
                    "|| has(self.targets.p95LatencyMs)",
                    "spec.scaling.targets needs at least one target (concurrencyPerReplica, "
                    "requestsPerSecondPerReplica or p95LatencyMs); remove it to scale with "
                    "spec.replicas",
                    ".targets",
                ),
            ]
        }
    )

    min_replicas: int = Field(
        default=1,
        ge=0,
        le=REPLICAS_LIMIT,
        description="Fewest serving replicas: the autoscaler's floor, and a floor for "
        "spec.replicas.",
    )
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=REPLICAS_LIMIT,
        description="Most serving replicas: the autoscaler's ceiling (1000 when unset), and a "
        "ceiling for spec.replicas.",
    )
    targets: ScalingTargets | None = Field(
        default=None,
        description="Targets of the built-in autoscaler; while set it owns the replica count.",
    )
    interval: str = Field(
        default="15s",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How often the autoscaler evaluates its targets.",
    )
    tolerance: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="No change while every signal is within this fraction of its target.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="Scale down only to the highest recommendation of this many last seconds.",
    )

    def bounded(self, replicas: int) -> int:
        """replicas within [minReplicas, maxReplicas]."""
        upper = self.max_replicas if self.max_replicas is not None else REPLICAS_LIMIT
        return min(max(replicas, self.min_replicas), upper)


class AnalysisMetric(Model):
    """A custom PromQL check of the canary."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "has(self.max) || has(self.min)",
                    "spec.rollout.analysis.metrics[]: set max or min",
                ),
            ]
        }
    )

    name: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN, description="Name of the check."
    )
    query: str = Field(
        min_length=1, max_length=4096, description="PromQL query returning one scalar."
    )
    max: float | None = Field(default=None, description="Largest passing value.")
    min: float | None = Field(default=None, description="Smallest passing value.")


# The checks an analysis can turn on; at least one must be (a rule of Analysis).
ANALYSIS_CHECKS = (
    "maxP99LatencyMs",
    "maxP99LatencyIncreaseVsStable",
    "maxErrorRate",
    "maxErrorRateIncreaseVsStable",
    "minAccuracy",
    "maxAccuracyDropVsStable",
    "maxMeanAbsoluteError",
    "maxMeanAbsoluteErrorIncreaseVsStable",
)


class Analysis(Model):
    """Checks every canary step must pass."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    " || ".join(f"has(self.{check})" for check in ANALYSIS_CHECKS)
                    + " || (has(self.metrics) && size(self.metrics) > 0)",
                    "spec.rollout.analysis: set at least one check ("
                    + ", ".join(ANALYSIS_CHECKS)
                    + " or metrics[]); an analysis without checks would promote on time alone",
                ),
                rule(
                    "!has(self.accuracyWindow) || duration(self.accuracyWindow) >= duration('1s')",
                    "spec.rollout.analysis.accuracyWindow must be at least 1s",
                    ".accuracyWindow",
                ),
            ]
        }
    )

    max_p99_latency_ms: float | None = Field(
        default=None, gt=0, description="Largest tolerated p99 latency of the canary, in ms."
    )
    max_p99_latency_increase_vs_stable: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Largest tolerated p99 increase over the stable revision's, as a ratio of "
        "it (0.2: up to 20% slower), measured over the same window.",
    )
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Largest tolerated ratio of failed requests."
    )
    max_error_rate_increase_vs_stable: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Largest tolerated increase of the failed-request ratio over the stable "
        "revision's, in ratio points (0.005: up to +0.5 points), measured over the same window.",
    )
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Smallest tolerated accuracy from delayed labels."
    )
    max_accuracy_drop_vs_stable: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Largest tolerated accuracy drop versus stable, in ratio points (0.02: "
        "up to 2 points less accurate), on labels received in the same window.",
    )
    max_mean_absolute_error: float | None = Field(
        default=None,
        ge=0,
        description="Largest tolerated mean absolute error of a regression model's predictions, "
        "from delayed labels.",
    )
    max_mean_absolute_error_increase_vs_stable: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Largest tolerated mean absolute error increase over stable's, as a ratio of "
        "it (0.1: up to 10% larger), on labels received in the same window.",
    )
    min_labelled_samples: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Labels a revision must have received in the accuracy window before the "
        "accuracy and MAE checks judge it; fewer is Inconclusive (hold), never a verdict.",
    )
    accuracy_window: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Window of the accuracy and MAE checks (labels trail predictions: make it "
        "longer than their delay); the interval when unset.",
    )
    failure_limit: int = Field(
        default=2, ge=1, le=100, description="Failed intervals that roll the canary back."
    )
    min_requests: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Requests a revision must have answered in an interval before its latency "
        "and error checks judge it; fewer is Inconclusive (hold), never a verdict.",
    )
    inconclusive_limit: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Inconclusive intervals in a row before onInconclusive applies.",
    )
    on_inconclusive: Literal["pause", "rollback"] = Field(
        default="pause",
        description="After inconclusiveLimit inconclusive intervals: pause (hold until the "
        "promote or abort annotation), or roll back; missing data never rolls back.",
    )
    metrics: list[AnalysisMetric] = Field(
        default_factory=list, max_length=16, description="Additional PromQL checks."
    )


class ParentRef(Model):
    """A Gateway API parent (Gateway) the route attaches to."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Gateway name."
    )
    namespace: str | None = Field(
        default=None, max_length=63, pattern=DNS_LABEL_PATTERN, description="Gateway namespace."
    )
    section_name: str | None = Field(
        default=None, max_length=253, description="Listener of the Gateway."
    )


Hostname = Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]


class TrafficRouter(Model):
    """How traffic is split between stable and canary."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.type != 'gatewayAPI' || (has(self.parentRefs) && "
                    "size(self.parentRefs) > 0)",
                    "spec.rollout.trafficRouter.parentRefs is required when type is gatewayAPI",
                    ".parentRefs",
                ),
            ]
        }
    )

    type: Literal["gatewayAPI", "replicas"] = Field(
        default="replicas",
        description="gatewayAPI weights an HTTPRoute's backends exactly; replicas splits by "
        "replica ratio.",
    )
    parent_refs: list[ParentRef] = Field(
        default_factory=list, max_length=8, description="Gateways of the HTTPRoute (gatewayAPI)."
    )
    hostnames: list[Hostname] = Field(
        default_factory=list,
        max_length=16,
        description="Hostnames the routes answer (gatewayAPI); none: any host. gRPC through "
        "the Gateway needs one (the model's name travels in the gRPC message, not its path, "
        "so a GRPCRoute is made only for a model with its own hostnames).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class Rollout(Model):
    """How a new revision replaces the stable one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                rule(
                    "self.steps.isSorted() && self.steps[size(self.steps) - 1] == 100",
                    "spec.rollout.steps must be ascending and end at 100",
                    ".steps",
                ),
                rule(
                    "duration(self.interval) >= duration('1s')",
                    "spec.rollout.interval must be at least 1s",
                    ".interval",
                ),
            ]
        }
    )

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [100],
        min_length=1,
        max_length=20,
        description="Canary traffic weights in percent, ascending, ending at 100.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    interval: str = Field(
        default="30s",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Time each step runs before its analysis (e.g. 30s, 2m).",
    )
    analysis: Analysis | None = Field(default=None, description="Checks of each step.")
    traffic_router: TrafficRouter = Field(
        default_factory=TrafficRouter, description="How traffic is split."
    )
    paused: bool = Field(
        default=False,
        description="Hold the canary at its current step (GitOps-friendly: it belongs in Git); "
        "false resumes the same step. One-off actions use the annotation "
        "modelship.io/rollout-action: promote | abort | retry.",
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=10,
        le=86400,
        description="A new revision whose pods are not all ready this long after it started is "
        "failed: scaled to zero, never retried by itself until the spec changes, while the "
        "stable revision keeps serving (Stalled=True names it and what its pods report).",
    )


class Slo(Model):
    """The model's service level: what its alerts (and dashboard thresholds) hold it to."""

    p99_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="Largest p99 latency in ms before the latency alert fires "
        "(default: rollout.analysis.maxP99LatencyMs, else 250).",
    )
    max_error_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest ratio of server errors before the error alert fires "
        "(default: rollout.analysis.maxErrorRate, else 0.01).",
    )
    min_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Smallest accuracy from delayed labels before the accuracy alert fires "
        "(default: rollout.analysis.minAccuracy; no accuracy alert when neither is set).",
    )
    min_labelled_samples: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Labels needed within the accuracy window before accuracy is judged at all.",
    )
    window: str = Field(
        default="5m",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Rate window of the latency and error alerts (accuracy uses 6x this); at "
        "least 4 scrape intervals, so each window holds enough samples.",
    )
    pending: str = Field(
        default="5m",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How much longer than the window an SLO breach must last before its alert "
        "fires (for = window + pending): a burst shorter than this never pages.",
    )


class Monitoring(Model):
    """Monitoring objects created for the model."""

    pod_monitor: bool = Field(default=False, description="Create a Prometheus PodMonitor.")
    rules: bool = Field(default=False, description="Create a PrometheusRule with SLO alerts.")
    dashboard: bool = Field(default=False, description="Create a Grafana dashboard ConfigMap.")
    slo: Slo = Field(default_factory=Slo, description="Thresholds of the model's alerts.")


# Spec fields that change how an artifact is made or how much its pods admit, never what it is.
_NOT_IN_REVISION: dict[str, set[str]] = {
    "optimization": {"resources"},
    "runtime": {"request_limits"},
}


class ModelDeploymentSpec(Model):
    """Desired state of a served model."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # spec.replicas has a default (the scale subresource cannot serve a missing
                # field), so "unset" reads as 1: any other value is a second owner.
                rule(
                    "!has(self.scaling.targets) || self.replicas == 1",
                    "spec.replicas and spec.scaling.targets both set the replica count: while "
                    "scaling.targets is set the built-in autoscaler owns it; remove "
                    "spec.replicas (or scaling.targets, to scale with spec.replicas, "
                    "kubectl scale, an HPA or KEDA)",
                    ".replicas",
                ),
            ]
        }
    )

    model: ModelSource = Field(description="The model to build and serve.")
    optimization: Optimization = Field(
        default_factory=Optimization, description="Build-time optimization and its accuracy gate."
    )
    runtime: Runtime = Field(default_factory=Runtime, description="The serving runtime.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=REPLICAS_LIMIT,
        description="Serving replicas when scaling.targets is unset, kept within "
        "scaling.minReplicas..maxReplicas; the scale subresource's field (kubectl scale, HPA, "
        "KEDA). Leave it unset while scaling.targets is set: the autoscaler owns the count.",
    )
    scaling: Scaling = Field(default_factory=Scaling, description="Replica bounds and targets.")
    rollout: Rollout = Field(
        default_factory=Rollout, description="How a new revision replaces the stable one."
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="Monitoring objects created for the model."
    )

    def revision(self) -> str:
        """Name the revision: a digest of everything that changes the served artifact."""
        identity = {
            part: getattr(self, part).model_dump(
                mode="json",
                by_alias=True,
                exclude_defaults=True,
                exclude=_NOT_IN_REVISION.get(part),
            )
            for part in ("model", "optimization", "runtime")
        }
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    @property
    def autoscaled(self) -> bool:
        """Whether the built-in autoscaler owns the replica count."""
        return self.scaling.targets is not None

    def desired_replicas(self) -> int:
        """Replicas to serve without the autoscaler: spec.replicas within the scaling bounds."""
        return self.scaling.bounded(self.replicas)


# --- status ---------------------------------------------------------------------------------


class Condition(Model):
    """A kstatus-compatible condition."""

    type: str = Field(max_length=316, description="Type of the condition, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason of the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        description="When the status last flipped (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="Generation of the spec this condition describes."
    )


class RevisionRef(Model):
    """One revision of the model and its built artifact."""

    revision: str = Field(description="Digest of model, optimization and runtime.")
    digest: str | None = Field(
        default=None, description="sha256 of the served artifact (the selected variant)."
    )
    artifact: str | None = Field(default=None, description="URI of the published build.")


class RetiredRevision(Model):
    """A replaced revision: out of traffic, drained, then kept scaled to zero for going back."""

    revision: str = Field(description="The replaced revision.")
    deployment: str = Field(description="Its Deployment (scaled to zero once drained).")
    since: str = Field(
        description="When the model's Service stopped selecting it (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class StartingRevision(Model):
    """A revision whose pods are starting: the clock of its progress deadline."""

    revision: str = Field(description="The starting revision.")
    since: str = Field(
        description="When it started (RFC 3339).", json_schema_extra={"format": "date-time"}
    )


class FailedRevision(Model):
    """A revision that missed its progress deadline; kept at zero replicas until the spec
    changes."""

    revision: str = Field(description="The failed revision.")
    generation: int = Field(ge=0, description="Generation of the spec it failed under.")
    reason: str = Field(description="CamelCase cause, e.g. ProgressDeadlineExceeded.")
    message: str = Field(
        max_length=4096, description="What its pods reported (waiting reasons, last exits)."
    )
    at: str = Field(
        description="When it failed (RFC 3339).", json_schema_extra={"format": "date-time"}
    )


class Revisions(Model):
    """The revisions the operator knows about."""

    current: RevisionRef | None = Field(
        default=None, description="Revision of the current spec (being built or served)."
    )
    stable: RevisionRef | None = Field(
        default=None, description="Revision the model's Service sends traffic to."
    )
    starting: StartingRevision | None = Field(
        default=None, description="The current revision while its pods start (its deadline clock)."
    )
    failed: FailedRevision | None = Field(
        default=None, description="The current revision, when it missed its progress deadline."
    )
    retired: list[RetiredRevision] = Field(
        default_factory=list,
        description="Replaced revisions still kept (newest first): draining, then at zero "
        "replicas so that going back to one needs no rebuild.",
    )


class CheckStatus(Model):
    """One check of an analysis interval, with the figures behind its verdict."""

    name: str = Field(description="The check (the spec field that turns it on, or a metric).")
    verdict: Literal["Pass", "Fail", "Inconclusive"] = Field(description="Its verdict.")
    reason: str = Field(max_length=2048, description="The figures, in words.")
    value: float | None = Field(default=None, description="The canary's measurement.")
    baseline: float | None = Field(default=None, description="The stable's, when compared.")
    threshold: float | None = Field(default=None, description="The limit it was held to.")
    samples: int | None = Field(default=None, description="The canary's requests or labels.")
    baseline_samples: int | None = Field(
        default=None, description="The stable's requests or labels, when compared."
    )
    p_value: float | None = Field(default=None, description="Of the test behind a Fail.")


class Canary(Model):
    """State of a canary rollout: enough to resume the same step after an operator restart."""

    revision: str = Field(description="Revision under test.")
    weight: int = Field(ge=0, le=100, description="Percent of traffic the step asks for.")
    step: int = Field(ge=0, description="Index of the current rollout step.")
    step_started_at: str | None = Field(
        default=None,
        description="When the step's pods were in place and its interval began (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    canary_replicas: int = Field(default=0, ge=0, description="Pods the step gives the canary.")
    stable_replicas: int = Field(default=0, ge=0, description="Pods the step leaves the stable.")
    traffic_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="gatewayAPI: percent of requests the routes send the canary now (the step's "
        "weight once its pods are ready; exact).",
    )
    paused: bool = Field(default=False, description="Held by spec.rollout.paused.")
    held_by_analysis: bool = Field(
        default=False,
        description="Held after inconclusiveLimit inconclusive intervals, until the promote or "
        "abort annotation.",
    )
    failures: int = Field(default=0, ge=0, description="Failed analysis intervals so far.")
    inconclusive: int = Field(
        default=0, ge=0, description="Inconclusive analysis intervals in a row."
    )
    missing_data: int = Field(
        default=0, ge=0, description="Of those, the intervals that lacked data."
    )
    analysis: list[CheckStatus] = Field(
        default_factory=list, description="Each check of the last analysis interval."
    )


class HistoryEntry(Model):
    """One revision's time in traffic."""

    revision: str = Field(description="The revision.")
    since: str = Field(
        description="When it began to take traffic (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    until: str | None = Field(
        default=None,
        description="When it stopped taking traffic (RFC 3339); absent while it serves.",
        json_schema_extra={"format": "date-time"},
    )
    outcome: str = Field(description="Serving, Replaced, Promoted or RolledBack.")


class BuildVariant(Model):
    """One variant produced by the build."""

    name: str = Field(description="Variant name (fp32, int8, fp16, ...).")
    sha256: str | None = Field(default=None, description="Digest of the variant's file.")
    accuracy: float | None = Field(default=None, description="Validation metric of the variant.")
    p50_ms: float | None = Field(default=None, description="Median latency at batch 1, in ms.")
    p99_ms: float | None = Field(default=None, description="p99 latency at batch 1, in ms.")
    selected: bool = Field(default=False, description="Whether this variant is served.")


class BuildStatus(Model):
    """Outcome of the build of the current revision."""

    revision: str = Field(description="Revision that was built.")
    job: str = Field(description="Name of the build Job.")
    state: Literal["Running", "Succeeded", "Failed"] = Field(description="State of the build.")
    selected: str | None = Field(default=None, description="Name of the selected variant.")
    source_sha256: str | None = Field(default=None, description="Digest of the source model.")
    variants: list[BuildVariant] = Field(
        default_factory=list, description="Variants built and measured."
    )
    error: str | None = Field(default=None, description="Cause of a failed build.")
    log_tail: str | None = Field(
        default=None, max_length=8192, description="Last lines of the failed build's log."
    )


class Decision(Model):
    """The last rollout decision."""

    action: str = Field(description="Promoted, RolledBack, Replaced, ...")
    reason: str = Field(description="Why the decision was taken.")
    at: str = Field(description="When (RFC 3339).", json_schema_extra={"format": "date-time"})


class MonitoringStatus(Model):
    """The monitoring children that exist for the model (names in its namespace)."""

    pod_monitor: str | None = Field(default=None, description="PodMonitor of the serving pods.")
    prometheus_rule: str | None = Field(default=None, description="PrometheusRule of its alerts.")
    dashboard: str | None = Field(
        default=None, description="ConfigMap holding its Grafana dashboard."
    )


class AutoscalingSignal(Model):
    """One target's reading against its target, and the replicas it asked for."""

    name: Literal["concurrencyPerReplica", "requestsPerSecondPerReplica", "p95LatencyMs"] = Field(
        description="The target (spec.scaling.targets field)."
    )
    value: float | None = Field(
        default=None, description="Measured value: per ready replica, or milliseconds for p95."
    )
    target: float = Field(description="The spec's target.")
    replicas: int | None = Field(
        default=None, description="Replicas this signal asked for; unset: no opinion."
    )
    note: str = Field(default="", max_length=1024, description="The reading in words.")


class AutoscalingSample(Model):
    """A past recommendation the scale-down stabilization still remembers."""

    at: str = Field(description="When (RFC 3339).", json_schema_extra={"format": "date-time"})
    replicas: int = Field(ge=0, description="Replicas recommended then.")


class AutoscalingStatus(Model):
    """What the built-in autoscaler measured and decided last, and the memory it keeps."""

    desired_replicas: int = Field(ge=0, description="Serving replicas the autoscaler asks for.")
    recommended_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Largest signal's recommendation, before the scale-up limit and stabilization.",
    )
    evaluated_at: str = Field(
        description="When these figures were measured: written at each decision or change of "
        "condition, and at most once a minute while only the figures move.",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(default="", max_length=4096, description="The evaluation in words.")
    held_for_missing_data: bool = Field(
        default=False, description="Whether the evaluation held for missing metrics."
    )
    signals: list[AutoscalingSignal] = Field(
        default_factory=list, description="Each target's reading and recommendation."
    )
    queries: dict[str, str] = Field(
        default_factory=dict, description="The PromQL of each reading, by name."
    )
    last_scale_time: str | None = Field(
        default=None,
        description="When it last changed the replicas.",
        json_schema_extra={"format": "date-time"},
    )
    last_scale_reason: str | None = Field(
        default=None, max_length=4096, description="Why it last changed the replicas."
    )
    scaled_from: int | None = Field(
        default=None, ge=0, description="Replicas before it last changed them."
    )
    panic_until: str | None = Field(
        default=None,
        description="End of the panic started by a burst (no scale-down before).",
        json_schema_extra={"format": "date-time"},
    )
    scale_up_window_start: str | None = Field(
        default=None,
        description="Start of the interval the scale-up allowance is counted in.",
        json_schema_extra={"format": "date-time"},
    )
    scale_up_window_replicas: int | None = Field(
        default=None, ge=0, description="Replicas at the start of that interval."
    )
    history: list[AutoscalingSample] = Field(
        default_factory=list,
        max_length=128,
        description="Recommendations that may still be the highest of the stabilization window.",
    )


class ModelDeploymentStatus(Model):
    """Observed state of a served model, written only by the operator."""

    phase: Phase | None = Field(default=None, description="Summary of the lifecycle.")
    observed_generation: int | None = Field(
        default=None, description="Generation of the spec the status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, BuildSucceeded, Reconciling, Stalled and one "
        "condition per accepted-but-unimplemented feature (reason NotImplemented).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    revisions: Revisions | None = Field(default=None, description="Current and stable revision.")
    canary: Canary | None = Field(default=None, description="Canary rollout in progress.")
    build: BuildStatus | None = Field(default=None, description="Build of the current revision.")
    last_decision: Decision | None = Field(default=None, description="Last rollout decision.")
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=20,
        description="The revisions that served, newest last (bounded to the last 10).",
    )
    replicas: int | None = Field(default=None, description="Serving pods (scale subresource).")
    ready_replicas: int | None = Field(default=None, description="Serving pods that are ready.")
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (scale subresource)."
    )
    url: str | None = Field(default=None, description="In-cluster inference URL of the model.")
    gateway_url: str | None = Field(
        default=None,
        alias="gatewayURL",
        description="Inference URL of the model through its Gateway (gatewayAPI), from the "
        "Gateway's address and listener.",
    )
    monitoring: MonitoringStatus | None = Field(
        default=None, description="Monitoring objects created for spec.monitoring."
    )
    feedback_key_secret: str | None = Field(
        default=None,
        description="Secret holding the key that signs prediction tokens (created once).",
    )
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The built-in autoscaler's last evaluation (scaling.targets)."
    )


class ModelDeployment(Model):
    """A model built, validated and served by modelship (the parsed custom resource)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str
    uid: str
    generation: int
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    annotations: dict[str, str] = {}

    @classmethod
    def from_body(cls, body: Any) -> ModelDeployment:
        """Parse a raw object (dict or kopf body) once; nothing reads nested dicts after this."""
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=meta.get("generation", 1),
            spec=ModelDeploymentSpec.model_validate(dict(body.get("spec") or {})),
            status=ModelDeploymentStatus.model_validate(_known_status(body.get("status"))),
            annotations=dict(meta.get("annotations") or {}),
        )


def _known_status(raw: Any) -> dict[str, Any]:
    # Fields written by others (e.g. kopf's own bookkeeping) are ignored, not fatal.
    fields = {f.alias or n for n, f in ModelDeploymentStatus.model_fields.items()}
    return {k: v for k, v in dict(raw or {}).items() if k in fields}
