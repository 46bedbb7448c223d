"""The PromQL each canary check runs: built from the spec, canary and stable over one window."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from modelship import api
from modelship.durations import PROMETHEUS_DURATION

# Revisions are digests today (api.ModelDeploymentSpec.revision); anything a label value can
# carry safely, unquoted, is accepted so a user query can interpolate them verbatim.
REVISION_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$"

# {{namespace}}, {{ canary }}: what a user query may name. Anything else in double braces is
# refused, so a typo is reported as such instead of reaching Prometheus as a parse error.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PLACEHOLDERS = ("namespace", "name", "canary", "stable", "window")
# Failed requests: every answer but a success (client and server errors alike: a canary whose
# signature breaks the clients' requests fails them with 4xx, and must be caught).
FAILED = (("outcome", "success"),)


class PlaceholderError(ValueError):
    """A user query names a placeholder that does not exist."""


@dataclass(frozen=True)
class Scope:
    """What one analysis looks at: a ModelDeployment, its two revisions, and the window."""

    namespace: str
    name: str
    canary: str
    stable: str
    window: str
    # Labels arrive late, so accuracy usually needs a longer window than latency and errors.
    feedback_window: str | None = None

    def __post_init__(self) -> None:
        for field, value, pattern in (
            ("namespace", self.namespace, api.DNS_LABEL_PATTERN),
            ("name", self.name, api.DNS_LABEL_PATTERN),
            ("canary", self.canary, REVISION_PATTERN),
            ("stable", self.stable, REVISION_PATTERN),
            ("window", self.window, PROMETHEUS_DURATION),
            ("feedback_window", self.feedback_window or self.window, PROMETHEUS_DURATION),
        ):
            if not re.fullmatch(pattern, value):
                raise ValueError(f"{field}: {value!r} does not match {pattern}")

    @property
    def labels_window(self) -> str:
        """The window of the feedback (delayed label) counters."""
        return self.feedback_window or self.window


@dataclass(frozen=True)
class RevisionQueries:
    """The built-in queries of one revision; each returns one sample, or nothing (no data)."""

    revision: str
    requests: str  # requests of any outcome
    server_errors: str  # failed requests: any outcome but "success" (4xx and 5xx)
    p99_seconds: str  # p99 latency, seconds (NaN when the window saw no request)
    latency_buckets: str  # cumulative count per `le`: one sample per bucket bound
    predictions: str  # labelled predictions
    correct: str  # labelled predictions that matched their label
    absolute_error: str  # sum of |prediction - label| over labelled regression predictions
    squared_error: str  # sum of (prediction - label)^2 over them


@dataclass(frozen=True)
class MetricQuery:
    """A user metric's query with its placeholders substituted, or why it could not be."""

    name: str
    promql: str | None
    error: str | None = None


@dataclass(frozen=True)
class QueryPlan:
    """Every query of one analysis interval."""

    canary: RevisionQueries
    stable: RevisionQueries
    metrics: tuple[MetricQuery, ...]


def selector(
    metric: str, matchers: Sequence[tuple[str, str]], exclude: Sequence[tuple[str, str]] = ()
) -> str:
    """A vector selector (`exclude` as != matchers); values are quoted as PromQL strings (a
    JSON string is one)."""
    inner = ", ".join(
        [f"{label}={json.dumps(value)}" for label, value in matchers]
        + [f"{label}!={json.dumps(value)}" for label, value in exclude]
    )
    return f"{metric}{{{inner}}}"


def revision_queries(scope: Scope, revision: str) -> RevisionQueries:
    """The built-in queries of one revision of the scope's ModelDeployment."""
    who = [("namespace", scope.namespace), ("model", scope.name), ("revision", revision)]

    def increase(metric: str, window: str, exclude: Sequence[tuple[str, str]] = ()) -> str:
        return f"increase({selector(metric, who, exclude)}[{window}])"

    # One shape for every series: increase() over the window, summed over pods and variants.
    # sum() of nothing is nothing, so a revision without series reads "no data", never 0.
    buckets = f"sum by (le) ({increase('modelship_request_duration_seconds_bucket', scope.window)})"
    return RevisionQueries(
        revision=revision,
        requests=f"sum({increase('modelship_requests_total', scope.window)})",
        server_errors=f"sum({increase('modelship_requests_total', scope.window, FAILED)})",
        p99_seconds=f"histogram_quantile(0.99, {buckets})",
        latency_buckets=buckets,
        predictions=(
            f"sum({increase('modelship_feedback_predictions_total', scope.labels_window)})"
        ),
        correct=f"sum({increase('modelship_feedback_correct_total', scope.labels_window)})",
        absolute_error=(
            f"sum({increase('modelship_feedback_absolute_error_total', scope.labels_window)})"
        ),
        squared_error=(
            f"sum({increase('modelship_feedback_squared_error_total', scope.labels_window)})"
        ),
    )


def render_metric_query(template: str, scope: Scope) -> str:
    """Substitute {{namespace}}, {{name}}, {{canary}}, {{stable}} and {{window}} in a user query.

    Values go in verbatim (not quoted): the query decides whether it needs `"{{canary}}"` as a
    label value or `[{{window}}]` as a range. Scope validation guarantees no value can break out
    of a string literal.
    """
    values = {
        "namespace": scope.namespace,
        "name": scope.name,
        "canary": scope.canary,
        "stable": scope.stable,
        "window": scope.window,
    }
    unknown = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - values.keys())
    if unknown:
        names = ", ".join("{{" + u + "}}" for u in unknown)
        raise PlaceholderError(f"unknown placeholder {names} (known: {', '.join(PLACEHOLDERS)})")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def plan_queries(scope: Scope, metrics: Sequence[api.AnalysisMetric] = ()) -> QueryPlan:
    """Every query of an interval: the built-ins for canary and stable, then each user metric."""
    rendered: list[MetricQuery] = []
    for metric in metrics:
        try:
            rendered.append(MetricQuery(metric.name, render_metric_query(metric.query, scope)))
        except PlaceholderError as error:
            rendered.append(MetricQuery(metric.name, None, str(error)))
    return QueryPlan(
        canary=revision_queries(scope, scope.canary),
        stable=revision_queries(scope, scope.stable),
        metrics=tuple(rendered),
    )
