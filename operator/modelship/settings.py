"""Typed settings of the operator process, read from MODELSHIP_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "MODELSHIP_"
# A Kubernetes resource quantity (500m, 2, 512Mi, 4Gi, 1e3).
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[mkMGTPE]|[KMGTPE]i)?$"


class OperatorSettings(BaseModel):
    """Everything the operator reads from its environment, validated once at startup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime_image: str = Field(
        default="docker.io/modelship/runtime:0.1.0",
        min_length=1,
        description="Image that runs `modelship-runtime build|fetch|serve`.",
    )
    tensorflow_build_image: str = Field(
        default="docker.io/modelship/build-tensorflow:0.1.0",
        min_length=1,
        description="Image that runs `modelship-runtime build` for the tensorflow and keras "
        "formats: the runtime image plus TensorFlow and tf2onnx (kept out of the serving image).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    development: bool = Field(
        default=False,
        description="Development mode: host paths are allowed (file:// model URIs and a file:// "
        "artifact store, hostPath volumes on the node). Anyone who may create a "
        "ModelDeployment could then mount any node path: never on a shared cluster.",
    )
    artifact_store: str = Field(
        default="file:///var/lib/modelship/artifacts",
        description="Where builds are published: s3://bucket/prefix or file:///path. A file:// "
        "store is a hostPath on the node, refused unless MODELSHIP_DEVELOPMENT is true.",
    )
    artifact_store_secret: str | None = Field(
        default=None,
        description="Secret (in each model's namespace) with the S3 credentials of the store.",
    )
    run_as_user: int = Field(
        default=65532,
        ge=1,
        description="User and group id of every pod the operator creates (the runtime image's "
        "user; never root). A file:// store must be writable by it.",
    )
    # Requests and limits of the containers the operator creates; a ModelDeployment overrides
    # them (spec.runtime.resources, spec.optimization.resources) key by key.
    build_cpu_request: str = Field(default="250m", pattern=QUANTITY)
    build_memory_request: str = Field(default="512Mi", pattern=QUANTITY)
    build_memory_limit: str = Field(default="4Gi", pattern=QUANTITY)
    serving_cpu_request: str = Field(default="100m", pattern=QUANTITY)
    serving_memory_request: str = Field(default="256Mi", pattern=QUANTITY)
    serving_memory_limit: str = Field(default="2Gi", pattern=QUANTITY)
    # The writable emptyDirs under a read-only root filesystem.
    build_scratch_limit: str = Field(
        default="8Gi", pattern=QUANTITY, description="sizeLimit of a build's /work and /tmp."
    )
    model_volume_limit: str = Field(
        default="4Gi", pattern=QUANTITY, description="sizeLimit of a serving pod's /models."
    )
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means the whole cluster."
    )
    resync_seconds: float = Field(
        default=300.0, gt=0, description="Period of the drift-repairing resync of every CR."
    )
    metrics_port: int = Field(default=8000, ge=0, le=65535, description="0 disables /metrics.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="0 disables /healthz.")
    build_backoff_limit: int = Field(default=2, ge=0, le=10)
    build_deadline_seconds: int = Field(default=1800, ge=60)
    kept_build_jobs: int = Field(
        default=3, ge=1, description="Finished build Jobs kept per ModelDeployment (newest first)."
    )
    drain_seconds: int = Field(
        default=10,
        ge=0,
        le=300,
        description="How long a pod leaving traffic keeps answering (its preStop sleep), and how "
        "long a replaced revision keeps its pods after the Service moved away from it: covers "
        "the propagation of endpoints to every node's proxy.",
    )
    kept_revisions: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Replaced revisions kept scaled to zero per ModelDeployment (newest first), so "
        "going back to one needs no rebuild and starts at once.",
    )
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus the canary analysis queries (e.g. "
        "http://prometheus.monitoring.svc:9090); unset, every analysis is Inconclusive and "
        "holds the canary.",
    )
    prometheus_scrape_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How often that Prometheus scrapes the serving pods (its scrapeInterval; "
        "prometheus-operator's default is 30s): the autoscaler's query windows follow it.",
    )
    prometheus_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="A slower answer counts as Prometheus down."
    )
    max_workers: int = Field(
        default=64, ge=1, description="Objects kopf processes at once (its worker limit)."
    )
    max_retry_delay_seconds: float = Field(default=300.0, gt=0)
    runbook_url: str = Field(
        default="docs/alerts.md",
        min_length=1,
        description="Where the alerts' runbook (docs/alerts.md of this release) is hosted; each "
        "alert's runbook_url is this plus #<alert name in lowercase>.",
    )

    @field_validator("artifact_store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        if not value.startswith(("s3://", "file:///")):
            raise ValueError(
                "MODELSHIP_ARTIFACT_STORE must be s3://bucket/prefix or file:///path, "
                f"got {value!r}"
            )
        return value.rstrip("/")

    def host_path_refusal(self, model_uri: str) -> str | None:
        """Why a model cannot be built or served here without development mode (a host path),
        or None."""
        if self.development:
            return None
        switch = (
            "refused unless the operator runs in development mode (MODELSHIP_DEVELOPMENT=true; "
            "never on a shared cluster)"
        )
        if model_uri.startswith("file://"):
            return (
                f"spec.model.uri {model_uri} is a path on the node's disk: {switch}; use an "
                "s3://, gs://, https:// or pvc:// URI"
            )
        if self.artifact_store.startswith("file://"):
            return (
                f"the operator's artifact store {self.artifact_store} (MODELSHIP_ARTIFACT_STORE) "
                f"is a path on the node's disk: {switch}; set an s3:// store"
            )
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read MODELSHIP_<FIELD> variables (namespaces comma-separated)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            if name == "namespaces":
                values[name] = tuple(ns.strip() for ns in raw.split(",") if ns.strip())
            else:
                values[name] = raw
        return cls.model_validate(values)
