"""Every dashboard query, its variables filled in for a real served model, returns data from the
cluster's real Prometheus: the check (run by tests/e2e/test_monitoring.py on its served model)
and the variable filling it relies on."""

from __future__ import annotations

import re

import pytest
from modelship import dashboards

from tests.support.prometheus import Prometheus, PrometheusError
from tests.support.waiting import wait_until
from tests.unit.monitoring_dashboards.queries import Query, dashboard_queries

pytestmark = pytest.mark.e2e

# Grafana's built-in variables, as a panel a few minutes wide would expand them.
BUILT_INS = {
    "$__rate_interval": "1m",
    "$__interval_ms": "60000",
    "$__interval": "1m",
    "$__range_s": "3600",
    "$__range_ms": "3600000",
    "$__range": "1h",
}
# Scrapes lag traffic and rate() needs two samples in its window: poll, don't sleep.
DATA_TIMEOUT = 180
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def fill(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana's built-in and the dashboard's template variables in a PromQL."""
    for name, value in BUILT_INS.items():
        expr = expr.replace(name, value)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(substitute, expr)


def _operator_job(prometheus: Prometheus) -> str:
    """The job that scrapes the operator, as the fleet dashboard's `operator_job` finds it."""
    found = prometheus.query("count by (job) (modelship_model_deployments)")
    jobs = sorted(sample["metric"]["job"] for sample in found if "job" in sample["metric"])
    assert jobs, "Prometheus has no modelship_model_deployments: is the operator scraped?"
    return jobs[0]


def check_dashboards_live(
    prometheus_url: str, namespace: str, model: str, operator_job: str | None = None
) -> None:
    """Run every panel query of both dashboards for this model; each must return samples.

    Annotation queries must run but may be empty (no decision needs to have happened).
    `operator_job` picks the operator when several are scraped (default: the first found).
    """
    prometheus = Prometheus(prometheus_url)
    job = operator_job or _operator_job(prometheus)
    variables = {"namespace": namespace, "model": model, "operator_job": job}
    queries: list[Query] = [
        *dashboard_queries(dashboards.model_dashboard()),
        *dashboard_queries(dashboards.fleet_dashboard()),
    ]
    assert queries
    for query in queries:
        promql = fill(query.expr, variables)
        try:
            samples = prometheus.query(promql)
        except PrometheusError as exc:
            pytest.fail(f"{query.where}: Prometheus rejected {promql!r}: {exc}")
        if samples or query.annotation:
            continue
        wait_until(
            lambda promql=promql: prometheus.query(promql),
            timeout=DATA_TIMEOUT,
            interval=5,
            what=f"data for {query.where}: {promql}",
        )


def test_fill_replaces_built_ins_and_template_variables() -> None:
    expr = 'rate(x{namespace="$namespace", model=~"${model}"}[$__rate_interval]) [$__interval]'
    filled = fill(expr, {"namespace": "ml", "model": "iris"})
    assert filled == 'rate(x{namespace="ml", model=~"iris"}[1m]) [1m]'
    with pytest.raises(KeyError):
        fill("up{job=~'$operator_job'}", {})
