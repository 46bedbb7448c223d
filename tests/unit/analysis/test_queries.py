"""The PromQL of each check: goldens for canary and stable, and user-metric placeholders."""

from __future__ import annotations

import pytest
from modelship import api
from modelship.analysis import queries
from modelship.analysis.queries import Scope

SCOPE = Scope(
    namespace="ml",
    name="fraud",
    canary="c0ffee1234",
    stable="5ab1e00000",
    window="5m",
    feedback_window="30m",
)

CANARY = {
    "requests": 'sum(increase(modelship_requests_total{namespace="ml", model="fraud", '
    'revision="c0ffee1234"}[5m]))',
    "server_errors": 'sum(increase(modelship_requests_total{namespace="ml", model="fraud", '
    'revision="c0ffee1234", outcome!="success"}[5m]))',
    "p99_seconds": "histogram_quantile(0.99, sum by (le) (increase("
    'modelship_request_duration_seconds_bucket{namespace="ml", model="fraud", '
    'revision="c0ffee1234"}[5m])))',
    "latency_buckets": "sum by (le) (increase(modelship_request_duration_seconds_bucket{"
    'namespace="ml", model="fraud", revision="c0ffee1234"}[5m]))',
    "predictions": 'sum(increase(modelship_feedback_predictions_total{namespace="ml", '
    'model="fraud", revision="c0ffee1234"}[30m]))',
    "correct": 'sum(increase(modelship_feedback_correct_total{namespace="ml", model="fraud", '
    'revision="c0ffee1234"}[30m]))',
}


@pytest.mark.parametrize("query", sorted(CANARY))
def test_canary_golden(query: str) -> None:
    plan = queries.plan_queries(SCOPE)
    assert plan.canary.revision == "c0ffee1234"
    assert getattr(plan.canary, query) == CANARY[query]


@pytest.mark.parametrize("query", sorted(CANARY))
def test_stable_runs_the_same_query_on_its_own_revision(query: str) -> None:
    plan = queries.plan_queries(SCOPE)
    assert plan.stable.revision == "5ab1e00000"
    expected = CANARY[query].replace('revision="c0ffee1234"', 'revision="5ab1e00000"')
    assert getattr(plan.stable, query) == expected
    assert expected != CANARY[query]


def test_feedback_window_defaults_to_the_window() -> None:
    plan = queries.plan_queries(Scope("ml", "fraud", "c0ffee1234", "5ab1e00000", "2m"))
    assert plan.canary.predictions == (
        'sum(increase(modelship_feedback_predictions_total{namespace="ml", model="fraud", '
        'revision="c0ffee1234"}[2m]))'
    )
    assert plan.canary.requests.endswith("[2m]))")


def test_the_p99_is_the_quantile_of_the_buckets_query() -> None:
    # One inner expression: the p99 judged and the histogram compared cannot disagree on scope.
    rq = queries.plan_queries(SCOPE).canary
    assert rq.p99_seconds == f"histogram_quantile(0.99, {rq.latency_buckets})"


def metric(name: str, query: str) -> api.AnalysisMetric:
    return api.AnalysisMetric(name=name, query=query, max=1)


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        (
            'sum(rate(app_errors_total{namespace="{{namespace}}", revision="{{canary}}"}[1m]))',
            'sum(rate(app_errors_total{namespace="ml", revision="c0ffee1234"}[1m]))',
        ),
        (
            'avg(score{app="{{ name }}", revision="{{ stable }}"}[{{window}}])',
            'avg(score{app="fraud", revision="5ab1e00000"}[5m])',
        ),
        (
            'x{revision="{{canary}}"} / on() x{revision="{{stable}}"}',
            'x{revision="c0ffee1234"} / on() x{revision="5ab1e00000"}',
        ),
        ("vector(1)", "vector(1)"),
        # Single braces are PromQL's own and stay as they are.
        ('up{job="{{namespace}}/{{name}}"}', 'up{job="ml/fraud"}'),
    ],
)
def test_user_metric_placeholders(template: str, rendered: str) -> None:
    plan = queries.plan_queries(SCOPE, [metric("custom", template)])
    assert plan.metrics == (queries.MetricQuery("custom", rendered),)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        (
            'x{revision="{{cnary}}"}',
            "unknown placeholder {{cnary}} (known: namespace, name, canary, stable, window)",
        ),
        ("{{ model }} {{}} {{canary}}", "unknown placeholder {{}}, {{model}} (known: "),
    ],
)
def test_an_unknown_placeholder_is_reported_not_sent(template: str, error: str) -> None:
    (query,) = queries.plan_queries(SCOPE, [metric("custom", template)]).metrics
    assert query.promql is None
    assert query.error is not None and query.error.startswith(error)


def test_every_metric_keeps_its_name_and_order() -> None:
    plan = queries.plan_queries(SCOPE, [metric("b", "vector(2)"), metric("a", "{{oops}}")])
    assert [m.name for m in plan.metrics] == ["b", "a"]
    assert plan.metrics[0].promql == "vector(2)"
    assert plan.metrics[1].error is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"namespace": "ML"},
        {"name": 'fraud"}'},
        {"canary": 'x"} or vector(1) #'},
        {"stable": ""},
        {"window": "1.5m"},
        {"window": "5 m"},
        {"feedback_window": "30"},
    ],
)
def test_scope_refuses_what_could_break_a_query(changes: dict[str, str]) -> None:
    fields = {
        "namespace": "ml",
        "name": "fraud",
        "canary": "c0ffee1234",
        "stable": "5ab1e00000",
        "window": "5m",
        **changes,
    }
    with pytest.raises(ValueError):
        Scope(**fields)


@pytest.mark.parametrize("window", ["30s", "1m30s", "2h", "500ms", "1d"])
def test_scope_accepts_prometheus_durations(window: str) -> None:
    assert Scope("ml", "fraud", "a", "b", window).window == window
