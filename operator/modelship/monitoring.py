"""Monitoring children of a ModelDeployment (PodMonitor, PrometheusRule, dashboard ConfigMap):
which should exist, and the condition that says how applying them went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modelship import alerts, api, dashboards, naming, render

Kind = Literal["PodMonitor", "PrometheusRule", "ConfigMap"]

# The kinds prometheus-operator's CRDs add; a cluster without them still serves models.
OPERATOR_KINDS: tuple[Kind, ...] = ("PodMonitor", "PrometheusRule")


@dataclass(frozen=True)
class Child:
    """One monitoring child: its body when the spec wants it, None when it must not exist."""

    kind: Kind
    name: str
    body: dict[str, Any] | None


def desired(md: api.ModelDeployment, runbook_url: str) -> tuple[Child, ...]:
    """Every monitoring child of the model, wanted or not (so a switched-off one is removed)."""
    wanted = md.spec.monitoring
    name = naming.monitoring_name(md.name)
    return (
        Child("PodMonitor", name, render.render_pod_monitor(md) if wanted.pod_monitor else None),
        Child(
            "PrometheusRule",
            name,
            alerts.render_prometheus_rule(md, runbook_url) if wanted.rules else None,
        ),
        Child(
            "ConfigMap",
            naming.dashboard_name(md.name),
            dashboards.render_dashboard_configmap(md) if wanted.dashboard else None,
        ),
    )


def recorded(status: api.ModelDeploymentStatus | None, kind: Kind) -> str | None:
    """The name status records for a kind: what an earlier reconcile created."""
    mon = status.monitoring if status is not None else None
    if mon is None:
        return None
    return {"PodMonitor": mon.pod_monitor, "PrometheusRule": mon.prometheus_rule}.get(
        kind, mon.dashboard
    )


@dataclass(frozen=True)
class Outcome:
    """What applying the monitoring children achieved."""

    present: dict[Kind, str] = field(default_factory=dict)
    kinds_not_served: tuple[Kind, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def wanted_anything(self) -> bool:
        return bool(self.present or self.kinds_not_served or self.errors)

    def status(self) -> api.MonitoringStatus | None:
        """The status field; None when the model has no monitoring child."""
        if not self.present:
            return None
        return api.MonitoringStatus(
            pod_monitor=self.present.get("PodMonitor"),
            prometheus_rule=self.present.get("PrometheusRule"),
            dashboard=self.present.get("ConfigMap"),
        )


def condition(outcome: Outcome) -> tuple[api.ConditionStatus, str, str] | None:
    """The `Monitoring` condition (status, reason, message); None when nothing is wanted."""
    if not outcome.wanted_anything:
        return None
    if outcome.errors:
        return "False", "ApplyFailed", "; ".join(outcome.errors)
    if outcome.kinds_not_served:
        kinds = " and ".join(outcome.kinds_not_served)
        return (
            "False",
            "CRDsMissing",
            f"{kinds} (monitoring.coreos.com/v1) not served by this cluster: install "
            "prometheus-operator's CRDs; the model serves without them and they are created "
            "on a later reconcile",
        )
    made = ", ".join(f"{kind} {name}" for kind, name in outcome.present.items())
    return "True", "Applied", made
