"""The operator's Prometheus client against the cluster's real Prometheus."""

from __future__ import annotations

import time

import pytest
from modelship.analysis.queries import QueryPlan, Scope, revision_queries
from modelship.prometheus import PrometheusClient

from tests.support.cluster import Cluster
from tests.support.prometheus import prometheus_url

pytestmark = pytest.mark.integration


async def test_every_query_of_an_interval_is_evaluated_at_one_instant(cluster: Cluster) -> None:
    client = PrometheusClient(prometheus_url(), timeout_seconds=10)
    at = round(time.time() - 30, 3)
    try:
        assert (await client.reading("time()", at)).value == pytest.approx(at, abs=1e-3)
        scope = Scope(namespace="ns", name="m", canary="c", stable="s", window="30s")
        plan = QueryPlan(
            canary=revision_queries(scope, "c"), stable=revision_queries(scope, "s"), metrics=()
        )
        canary, stable, _ = await client.interval(plan, at)
        # Nothing serves model "m": every built-in query reads "no data", none errs.
        for measured in (canary.requests, stable.correct, canary.squared_error):
            assert (measured.value, measured.error) == (None, None)
    finally:
        await client.close()


async def test_an_unreachable_prometheus_is_an_error_in_words_not_an_exception() -> None:
    client = PrometheusClient("http://127.0.0.1:9", timeout_seconds=2)
    try:
        measured = await client.reading("up", time.time())
    finally:
        await client.close()
    assert measured.error is not None and "unreachable" in measured.error, measured


async def test_the_autoscalers_readings_never_read_an_empty_result_as_zero(
    cluster: Cluster,
) -> None:
    client = PrometheusClient(prometheus_url(), timeout_seconds=10)
    down = PrometheusClient("http://127.0.0.1:9", timeout_seconds=2)
    queries = {
        "number": "vector(2.5)",
        "nothing": 'sum(rate(modelship_requests_total{model="no-such-model"}[1m]))',
        "broken": "sum(rate(",
    }
    try:
        got = await client.scalars(queries)
        lost = await down.scalars({"number": "vector(2.5)"})
    finally:
        await client.close()
        await down.close()
    assert (got["number"].value, got["number"].query) == (2.5, "vector(2.5)")
    assert got["nothing"].value is None and "empty result" in (got["nothing"].error or "")
    assert got["broken"].value is None and "bad_data" in (got["broken"].error or "")
    assert lost["number"].value is None and "unreachable" in (lost["number"].error or "")
