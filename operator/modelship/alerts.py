"""The PrometheusRule of a ModelDeployment: its SLO and lifecycle alerts, thresholds from spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelship import api, naming, render
from modelship.durations import duration_ms, prometheus_duration

# Where each alert's runbook lives (one section per alert, anchor = alert name in lowercase):
# the release's docs/alerts.md unless the operator is told where a team hosts it.
RUNBOOK_URL = "docs/alerts.md"

DEFAULT_P99_LATENCY_MS = 250.0
DEFAULT_MAX_ERROR_RATIO = 0.01
ACCURACY_WINDOW_FACTOR = 6

# rate() needs two samples inside its window: below 10s no scrape interval fits. The window
# should hold four scrapes (slo.window's description says so); 5m by default.
MIN_WINDOW_MS = 10_000


@dataclass(frozen=True)
class Thresholds:
    """What the model's alerts hold it to, resolved from spec.monitoring.slo and its defaults."""

    p99_latency_ms: float
    max_error_ratio: float
    min_accuracy: float | None  # None: no accuracy alert
    min_labelled_samples: int
    window: str  # Prometheus durations from here on
    accuracy_window: str
    slo_for: str


def resolve_thresholds(spec: api.ModelDeploymentSpec) -> Thresholds:
    """Resolve the alert thresholds: the SLO's own, else the rollout analysis', else defaults."""
    slo = spec.monitoring.slo
    analysis = spec.rollout.analysis or api.Analysis()
    p99 = _first(slo.p99_latency_ms, analysis.max_p99_latency_ms, DEFAULT_P99_LATENCY_MS)
    errors = _first(slo.max_error_ratio, analysis.max_error_rate, DEFAULT_MAX_ERROR_RATIO)
    window = max(duration_ms(slo.window), MIN_WINDOW_MS)
    return Thresholds(
        p99_latency_ms=p99,
        max_error_ratio=errors,
        min_accuracy=slo.min_accuracy if slo.min_accuracy is not None else analysis.min_accuracy,
        min_labelled_samples=slo.min_labelled_samples,
        window=prometheus_duration(window),
        accuracy_window=prometheus_duration(window * ACCURACY_WINDOW_FACTOR),
        # A burst stays visible for its length plus the window: one shorter than `pending`
        # never fires, whatever the window (docs/alerts.md, "Timing").
        slo_for=prometheus_duration(window + duration_ms(slo.pending)),
    )


def _first(*values: float | None) -> float:
    # A ratio of 0 is a real threshold ("no errors at all"), so `or` would be wrong here.
    return next(v for v in values if v is not None)


def render_prometheus_rule(
    md: api.ModelDeployment, runbook_url: str = RUNBOOK_URL
) -> dict[str, Any]:
    """Render the model's PrometheusRule: every expression selects this model and no other."""
    thresholds = resolve_thresholds(md.spec)
    return render.render_template(
        "prometheusrule.yaml.j2",
        name=naming.monitoring_name(md.name),
        namespace=md.namespace,
        model=md.name,
        labels=naming.common_labels(md.name, "monitoring"),
        owner=naming.owner_reference(md),
        group=f"modelship.model.{md.namespace}.{md.name}",
        runbook=runbook_url,
        t=thresholds,
    )
