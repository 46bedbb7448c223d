"""The operator's own Prometheus metrics, on their own registry and port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from modelship import api

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_SECONDS = Histogram(
    "modelship_reconcile_duration_seconds",
    "Time of one reconcile of a ModelDeployment.",
    ["trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "modelship_reconcile_errors_total",
    "Reconciles that failed, by reason.",
    ["reason"],
    registry=REGISTRY,
)
MODEL_DEPLOYMENTS = Gauge(
    "modelship_model_deployments",
    "ModelDeployments by phase.",
    ["phase"],
    registry=REGISTRY,
)
BUILDS = Counter(
    "modelship_builds_total",
    "Build Jobs by outcome (started, succeeded, failed).",
    ["outcome"],
    registry=REGISTRY,
)
MODEL_PHASE = Gauge(
    "modelship_model_deployment_phase",
    "1 for the phase each ModelDeployment is in, 0 for the others.",
    ["namespace", "name", "phase"],
    registry=REGISTRY,
)
MODEL_REPLICAS = Gauge(
    "modelship_model_deployment_replicas",
    "Serving replicas each ModelDeployment asks for.",
    ["namespace", "name"],
    registry=REGISTRY,
)
MODEL_READY_REPLICAS = Gauge(
    "modelship_model_deployment_ready_replicas",
    "Ready serving replicas of each ModelDeployment.",
    ["namespace", "name"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "modelship_decisions_total",
    "Actions the operator took on its own, by ModelDeployment and action.",
    ["namespace", "name", "action"],
    registry=REGISTRY,
)
ANALYSIS = Counter(
    "modelship_analysis_checks_total",
    "Canary analysis check results, by check and verdict (Pass, Fail, Inconclusive).",
    ["check", "verdict"],
    registry=REGISTRY,
)
AUTOSCALER_EVALUATIONS = Counter(
    "modelship_autoscaler_evaluations_total",
    "Evaluations of the built-in autoscaler: evaluated, or held for missing metrics.",
    ["outcome"],
    registry=REGISTRY,
)
RESYNC_COMPLETED = Gauge(
    "modelship_resync_last_completed_timestamp_seconds",
    "When the periodic resync last went through every ModelDeployment (Unix time).",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "modelship_api_requests_total",
    "Kubernetes API requests made by the operator's reconciler.",
    ["method", "resource"],
    registry=REGISTRY,
)

PHASES: tuple[str, ...] = (*api.Phase.__args__, "Unknown")  # type: ignore[attr-defined]


def publish_phases(phases: Iterable[str]) -> None:
    """Set the by-phase gauge from the phases of every known ModelDeployment."""
    counts = dict.fromkeys(PHASES, 0)
    for phase in phases:
        counts[phase if phase in counts else "Unknown"] += 1
    for phase, count in counts.items():
        MODEL_DEPLOYMENTS.labels(phase=phase).set(count)


def publish_model(
    namespace: str, name: str, phase: str, desired_replicas: int, ready_replicas: int
) -> None:
    """Set the per-ModelDeployment gauges (bounded by the number of CRs, never per request)."""
    for known in PHASES:
        MODEL_PHASE.labels(namespace=namespace, name=name, phase=known).set(
            1 if known == phase else 0
        )
    MODEL_REPLICAS.labels(namespace=namespace, name=name).set(desired_replicas)
    MODEL_READY_REPLICAS.labels(namespace=namespace, name=name).set(ready_replicas)


def forget_model(namespace: str, name: str) -> None:
    """Drop a deleted ModelDeployment's series, so dashboards do not show ghosts."""
    for known in PHASES:
        _remove(MODEL_PHASE, namespace, name, known)
    _remove(MODEL_REPLICAS, namespace, name)
    _remove(MODEL_READY_REPLICAS, namespace, name)


def _remove(metric: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never published (the first reconcile failed)
        metric.remove(*labels)


def count_request(method: str, resource: str) -> None:
    """Record one API request."""
    API_REQUESTS.labels(method=method, resource=resource).inc()


def serve(port: int) -> int:
    """Start /metrics on a background thread; returns the bound port (0 picks a free one)."""
    server, _thread = start_http_server(port, registry=REGISTRY)
    return int(server.server_port)
