"""Every dashboard query reads only metrics and labels that docs/metrics.md lists and that the
runtime and operator really export."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from modelship import dashboards, metrics
from modelship_runtime.server.metrics import RuntimeMetrics
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.monitoring_dashboards.queries import (
    SYNTHETIC_SERIES,
    TARGET_LABELS,
    Query,
    dashboard_queries,
    documented_metrics,
    grouping_labels,
    matcher_labels,
    metric_names,
)


def _all_queries() -> list[Query]:
    return [
        *dashboard_queries(dashboards.model_dashboard()),
        *dashboard_queries(dashboards.fleet_dashboard()),
    ]


def _runtime_exposition() -> dict[str, set[str]]:
    """Series name -> label names, from what the runtime's /metrics renders."""
    # The constructor's arguments follow the metric contract (model, revision, variant); pass
    # whichever of the known ones it takes so the test survives that change.
    known = {"model": "iris", "version": "7", "revision": "7", "variant": "fp32"}
    parameters = inspect.signature(RuntimeMetrics).parameters
    unknown = [n for n, p in parameters.items() if n not in known and p.default is p.empty]
    assert not unknown, f"RuntimeMetrics now needs {unknown}: teach this test those arguments"
    runtime = RuntimeMetrics(**{n: known[n] for n in parameters if n in known})
    exposed: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(runtime.render().decode()):
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    return exposed


def _operator_exposition() -> set[str]:
    """Series names the operator's registry will expose (labelled metrics have no samples
    before their first observation, so names come from the families' types)."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (revision, le) (rate(a_bucket{model="$model"}'
            "[$__rate_interval])))",
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) / sum(b) or on() vector(0)", {"a_total", "b"}),
        ('time() - max(c{job=~"x|y"}) > 0', {"c"}),
        ('up{job="a"} == bool 1 and d offset 5m', {"up", "d"}),
    ],
)
def test_metric_names_are_extracted_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_labels_are_extracted_from_promql() -> None:
    expr = 'sum by (revision, le) (rate(x{namespace="$ns", model=~"a,b"}[1m])) or on() vector(0)'
    assert matcher_labels(expr) == {"x": {"namespace", "model"}}
    assert grouping_labels(expr) == {"revision", "le"}


def test_every_panel_target_and_annotation_is_found() -> None:
    queries = _all_queries()
    assert len(queries) > 30
    assert any(q.annotation for q in queries)
    for query in queries:
        assert metric_names(query.expr), f"{query.where}: no metric in {query.expr!r}"


def test_queries_read_only_documented_metrics() -> None:
    documented = documented_metrics()
    assert len(documented) > 20, "docs/metrics.md tables were not parsed"
    for query in _all_queries():
        unknown = metric_names(query.expr) - documented.keys() - SYNTHETIC_SERIES.keys()
        assert not unknown, f"{query.where} reads {sorted(unknown)}, not in docs/metrics.md"


def test_the_runtime_exports_every_runtime_series_the_dashboards_read() -> None:
    documented = documented_metrics()
    exposed = _runtime_exposition()
    for query in _all_queries():
        for name in metric_names(query.expr) - SYNTHETIC_SERIES.keys():
            if name in documented and documented[name].source == "operator":
                continue
            assert name in exposed, f"{query.where} reads {name}; the runtime does not export it"


def test_the_operator_exports_every_operator_series_the_dashboards_read() -> None:
    documented = documented_metrics()
    exposed = _operator_exposition()
    missing = sorted(
        {
            f"{name} ({query.where})"
            for query in _all_queries()
            for name in metric_names(query.expr)
            if name in documented and documented[name].source == "operator" and name not in exposed
        }
    )
    assert not missing, "the operator does not export:\n" + "\n".join(missing)


def _series_labels(name: str, documented: dict[str, Any]) -> frozenset[str]:
    if name in SYNTHETIC_SERIES:
        return SYNTHETIC_SERIES[name]
    labels: frozenset[str] = documented[name].series_labels(name)
    return labels


def test_queries_use_only_documented_labels() -> None:
    documented = documented_metrics()
    for query in _all_queries():
        names = metric_names(query.expr)
        available = frozenset().union(*(_series_labels(n, documented) for n in names))
        for name, labels in matcher_labels(query.expr).items():
            allowed = _series_labels(name, documented) if name else available
            assert labels <= allowed, f"{query.where}: {name} has no label {labels - allowed}"
        extra = grouping_labels(query.expr) - available
        assert not extra, f"{query.where}: groups by {extra}, which no series it reads carries"


def test_the_runtime_exports_the_labels_the_dashboards_use() -> None:
    documented = documented_metrics()
    exposed = _runtime_exposition()
    for query in _all_queries():
        runtime = [
            n
            for n in metric_names(query.expr)
            if n in documented and documented[n].source == "runtime"
        ]
        if not runtime:
            continue
        available = set(TARGET_LABELS).union(*(exposed.get(n, set()) for n in runtime))
        used = grouping_labels(query.expr).union(*matcher_labels(query.expr).values())
        assert used <= available, (
            f"{query.where} uses labels {sorted(used - available)} the runtime does not export "
            f"(it exports {sorted(available - TARGET_LABELS)})"
        )


def _selectors(query: Query) -> dict[str, str]:
    """Series name -> the text of its matchers, straight from the expression."""
    return {m.group(1): m.group(2) for m in re.finditer(r"([a-z_:]+)\{([^}]*)\}", query.expr)}


def test_per_model_queries_select_the_model_by_its_variables() -> None:
    documented = documented_metrics()
    for query in dashboard_queries(dashboards.model_dashboard()):
        for name in metric_names(query.expr):
            selector = _selectors(query).get(name, "")
            if documented[name].source == "runtime":
                assert 'namespace="$namespace", model="$model"' in selector, query.where
            else:
                assert 'namespace="$namespace", name="$model"' in selector, query.where


def test_fleet_queries_select_models_and_the_operator_by_variables() -> None:
    documented = documented_metrics()
    for query in dashboard_queries(dashboards.fleet_dashboard()):
        for name in metric_names(query.expr):
            selector = _selectors(query).get(name, "")
            labels = documented[name].labels if name in documented else frozenset()
            if name in documented and documented[name].source == "runtime":
                assert 'namespace=~"$namespace", model=~"$model"' in selector, query.where
            elif {"namespace", "name"} <= labels:
                assert 'namespace=~"$namespace", name=~"$model"' in selector, query.where
            else:
                assert 'job=~"$operator_job"' in selector, query.where
