"""The operator's own Prometheus metrics, on their own registry and port."""

from __future__ import annotations

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


def count_request(method: str, resource: str) -> None:
    """Record one API request."""
    API_REQUESTS.labels(method=method, resource=resource).inc()


def serve(port: int) -> int:
    """Start /metrics on a background thread; returns the bound port (0 picks a free one)."""
    server, _thread = start_http_server(port, registry=REGISTRY)
    return int(server.server_port)
