"""The one Prometheus client of the operator: instant queries with a timeout, over aiohttp.

Every failure comes back as a reading with the cause in words, never as an exception: an
unreachable Prometheus is a state the canary analysis holds on (Inconclusive), not a crash.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from modelship.analysis.checks import HistogramMeasurement, Measurement, RevisionMeasurements
from modelship.analysis.queries import QueryPlan, RevisionQueries
from modelship.analysis.statistics import Histogram
from modelship.scaling.recommend import Reading


class PrometheusClient:
    """Instant queries (GET /api/v1/query) against one Prometheus."""

    def __init__(self, url: str | None, timeout_seconds: float) -> None:
        self.url = url.rstrip("/") if url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _samples(
        self, promql: str, at: float | None = None
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        """The result vector (None: nothing usable) and the error in words; evaluated at `at`
        (Unix seconds) when given, else at Prometheus' now."""
        if self.url is None:
            return None, "no Prometheus configured (MODELSHIP_PROMETHEUS_URL)"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
            async with self._session.get(f"{self.url}/api/v1/query", params=params) as response:
                return parse_vector(response.status, await response.text())
        except TimeoutError:
            return None, f"Prometheus at {self.url} timed out"
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"Prometheus at {self.url} unreachable: {exc}"

    async def reading(self, promql: str, at: float | None = None) -> Measurement:
        """One number: the single sample of the result (none: no data)."""
        samples, error = await self._samples(promql, at)
        if error is not None:
            return Measurement(error=f"{error} (query: {promql})")
        assert samples is not None
        if not samples:
            return Measurement()
        if len(samples) > 1:
            return Measurement(error=f"{len(samples)} series where one was expected: {promql}")
        return Measurement(value=_value(samples[0]))

    async def scalars(self, queries: dict[str, str]) -> dict[str, Reading]:
        """Several one-number queries at once, by name, for the autoscaler: an empty result
        is missing data (never read as 0, which would scale an idle or broken model down)."""
        names = list(queries)
        answers = await asyncio.gather(*(self.reading(queries[n]) for n in names))
        out: dict[str, Reading] = {}
        for name, answer in zip(names, answers, strict=True):
            promql = queries[name]
            if answer.error is not None:
                out[name] = Reading.missing(answer.error, promql)
            elif answer.value is None:
                out[name] = Reading.missing("empty result (no series matched)", promql)
            else:
                out[name] = Reading.of(answer.value, promql)
        return out

    async def histogram(self, promql: str, at: float | None = None) -> HistogramMeasurement:
        """Cumulative counts per `le` bound (one sample per bucket)."""
        samples, error = await self._samples(promql, at)
        if error is not None:
            return HistogramMeasurement(error=f"{error} (query: {promql})")
        assert samples is not None
        pairs = [
            (float(s.get("metric", {}).get("le", "nan")), _value(s))
            for s in samples
            if "le" in s.get("metric", {})
        ]
        if not pairs:
            return HistogramMeasurement()
        try:
            return HistogramMeasurement(histogram=Histogram.from_cumulative(pairs))
        except ValueError as exc:
            return HistogramMeasurement(error=f"unusable histogram ({exc}): {promql}")

    async def revision(self, queries: RevisionQueries, at: float) -> RevisionMeasurements:
        """Every built-in reading of one revision, at once, all evaluated at `at`."""
        readings = asyncio.gather(
            *(
                self.reading(promql, at)
                for promql in (
                    queries.requests,
                    queries.server_errors,
                    queries.p99_seconds,
                    queries.predictions,
                    queries.correct,
                    queries.absolute_error,
                    queries.squared_error,
                )
            )
        )
        buckets, counts = await asyncio.gather(
            self.histogram(queries.latency_buckets, at), readings
        )
        requests, errors, p99, predictions, correct, absolute_error, squared_error = counts
        return RevisionMeasurements(
            requests=requests,
            server_errors=errors,
            p99_seconds=p99,
            latency_buckets=buckets,
            predictions=predictions,
            correct=correct,
            absolute_error=absolute_error,
            squared_error=squared_error,
        )

    async def interval(
        self, plan: QueryPlan, at: float
    ) -> tuple[RevisionMeasurements, RevisionMeasurements, dict[str, Measurement]]:
        """The readings of one analysis interval: canary, stable, and each user metric.

        Every query is evaluated at the same instant `at`: each increase() then covers the same
        window and extrapolates the same way, so the counts of a ratio (correct and labelled
        predictions, failed and all requests) agree exactly where their series do. Queries
        left to Prometheus' own "now" land milliseconds apart, and a ratio of two equal
        counters came out as 99.5%."""
        canary, stable = await asyncio.gather(
            self.revision(plan.canary, at), self.revision(plan.stable, at)
        )
        metrics: dict[str, Measurement] = {}
        for metric in plan.metrics:
            if metric.promql is None:
                metrics[metric.name] = Measurement(error=metric.error)
            else:
                metrics[metric.name] = await self.reading(metric.promql, at)
        return canary, stable, metrics


def parse_vector(status: int, text: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """An /api/v1/query answer as its samples, or the error in words (pure)."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        return None, f"HTTP {status}, not a Prometheus answer: {text[:200]!r}"
    if not isinstance(body, dict) or body.get("status") != "success":
        kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
        detail = body.get("error", "") if isinstance(body, dict) else ""
        return None, f"HTTP {status}, {kind}: {detail}".strip()
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        return [{"metric": {}, "value": data.get("result")}], None
    result = data.get("result")
    if data.get("resultType") != "vector" or not isinstance(result, list):
        return None, f"unexpected {data.get('resultType')} result"
    return result, None


def _value(sample: dict[str, Any]) -> float:
    pair = sample.get("value") or [0, "nan"]
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError):
        return float("nan")
