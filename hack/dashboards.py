"""Generation of the Grafana dashboards (manifests/dashboards/*.json) with grafana-foundation-sdk.

Run `python hack/dashboards.py` after changing a panel; `--check` fails when a committed file is
stale (tests/unit/monitoring_dashboards runs the same comparison). The operator never imports
this module: it serves the committed copy under operator/modelship/templates/dashboards/.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import generated_files
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS_DIR = ROOT / "manifests" / "dashboards"
PACKAGE_DIR = ROOT / "operator" / "modelship" / "templates" / "dashboards"

MODEL_UID = "modelship-model"
FLEET_UID = "modelship-fleet"
TAGS = ["modelship"]
OPERATOR_JOB = "modelship-system/modelship-operator"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label selectors (docs/metrics.md): runtime series carry `model`, the operator's per-model
# series carry `name`; both carry the ModelDeployment's `namespace`.
RUNTIME = 'namespace="$namespace", model="$model"'
OPERATOR = 'namespace="$namespace", name="$model"'
FLEET_RUNTIME = 'namespace=~"$namespace", model=~"$model"'
FLEET_OPERATOR = 'namespace=~"$namespace", name=~"$model"'
OPERATOR_SELF = 'job=~"$operator_job"'

# Labels arrive minutes to hours after the prediction: a window as wide as the canary
# analysis' keeps the ratio from flickering between 0 and 1.
ACCURACY_WINDOW = "30m"


def _rate(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def _ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/\n{denominator}"


def _quantile(q: float, histogram: str, selector: str, by: str) -> str:
    by_le = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, {_rate(f'{histogram}_bucket', selector, by_le)})"


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .range()
    )


def _instant(expr: str, legend: str, ref: str, *, as_table: bool = False) -> prometheus.Dataquery:
    query = (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .instant()
    )
    if as_table:
        query = query.format(prometheus_model.PromQueryFormat.TABLE)
    return query


def _refs(queries: list[tuple[str, str]]) -> list[prometheus.Dataquery]:
    return [_query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


class _Ids:
    """Panel ids: unique within a dashboard and stable from one generation to the next."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _graph(
    ids: _Ids,
    title: str,
    description: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    span: int = 12,
    minimum: float | None = None,
    maximum: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(8)
        .targets(list(_refs(queries)))
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    return panel


def _stat(
    ids: _Ids,
    title: str,
    description: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.VALUE_AND_NAME,
    span: int = 6,
) -> stat.Panel:
    return (
        stat.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(4)
        .targets([_instant(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(queries)])
        .text_mode(text_mode)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _row(ids: _Ids, title: str) -> dashboard_builder.Row:
    return dashboard_builder.Row(title).id(ids.next())


def _datasource_variable() -> dashboard_builder.DatasourceVariable:
    return dashboard_builder.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def _label_variable(
    name: str, label: str, query: str, *, multi: bool = False
) -> dashboard_builder.QueryVariable:
    variable = (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def _links() -> list[Builder[model.DashboardLink]]:
    return [
        dashboard_builder.DashboardLink("modelship")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(TAGS)
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


# The SDK writes the interval variable's fields on every variable; the schema has them on
# interval variables only (and Grafana ignores them elsewhere).
_INTERVAL_ONLY = ("auto", "auto_min", "auto_count")


def _to_dict(builder: Builder[model.Dashboard]) -> dict[str, Any]:
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for variable in encoded.get("templating", {}).get("list", []):
        if variable["type"] != "interval":
            for key in _INTERVAL_ONLY:
                variable.pop(key, None)
    return encoded


def build_model_dashboard() -> dict[str, Any]:
    """The per-model dashboard, with `namespace` and `model` template variables."""
    ids = _Ids()
    requests = "modelship_requests_total"
    server_errors = f'{RUNTIME}, outcome="server_error"'
    client_errors = f'{RUNTIME}, outcome="client_error"'
    builder = (
        dashboard_builder.Dashboard("modelship / model")
        .uid(MODEL_UID)
        .description(
            "One ModelDeployment: traffic, errors and latency by revision (stable and canary), "
            "batching, accuracy from delayed labels, replicas and the operator's decisions."
        )
        .tags(TAGS)
        .links(_links())
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .with_variable(_datasource_variable())
        .with_variable(
            _label_variable(
                "namespace", "Namespace", "label_values(modelship_requests_total, namespace)"
            )
        )
        .with_variable(
            _label_variable(
                "model",
                "Model",
                'label_values(modelship_requests_total{namespace="$namespace"}, model)',
            )
        )
        .annotation(
            dashboard_builder.AnnotationQuery()
            .name("Operator decisions")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("orange")
            .expr(f"sum by (action) (increase(modelship_decisions_total{{{OPERATOR}}}[2m])) > 0")
        )
        .with_row(_row(ids, "Overview"))
        .with_panel(
            _stat(
                ids,
                "Phase",
                "The phase the operator reports in status.phase.",
                "none",
                [
                    (
                        f"max by (phase) (modelship_model_deployment_phase{{{OPERATOR}}}) == 1",
                        "{{phase}}",
                    )
                ],
                text_mode=common.BigValueTextMode.NAME,
            )
        )
        .with_panel(
            _stat(
                ids,
                "Replicas",
                "Serving replicas the operator wants and those ready.",
                "none",
                [
                    (f"max(modelship_model_deployment_replicas{{{OPERATOR}}})", "desired"),
                    (f"max(modelship_model_deployment_ready_replicas{{{OPERATOR}}})", "ready"),
                ],
            )
        )
        .with_panel(
            _stat(
                ids,
                "Requests per second",
                "All revisions, all outcomes.",
                "reqps",
                [(f"sum(rate({requests}{{{RUNTIME}}}[$__rate_interval]))", "requests")],
                text_mode=common.BigValueTextMode.VALUE,
            )
        )
        .with_panel(
            _stat(
                ids,
                "Server error ratio",
                "Server errors over all requests, all revisions.",
                "percentunit",
                [
                    (
                        _ratio(
                            f"sum(rate({requests}{{{server_errors}}}[$__rate_interval]))",
                            f"sum(rate({requests}{{{RUNTIME}}}[$__rate_interval]))",
                        ),
                        "server errors",
                    )
                ],
                text_mode=common.BigValueTextMode.VALUE,
            )
        )
        .with_row(_row(ids, "Traffic"))
        .with_panel(
            _graph(
                ids,
                "Requests per second by revision and outcome",
                "Inference requests per second; stable and canary differ by revision.",
                "reqps",
                [(_rate(requests, RUNTIME, "revision, outcome"), "{{revision}} {{outcome}}")],
            )
        )
        .with_panel(
            _graph(
                ids,
                "Error ratio by revision",
                "Share of requests that failed, per revision: server errors (the model or "
                "runtime failed) and client errors (malformed requests).",
                "percentunit",
                [
                    (
                        _ratio(
                            _rate(requests, server_errors, "revision"),
                            _rate(requests, RUNTIME, "revision"),
                        ),
                        "{{revision}} server errors",
                    ),
                    (
                        _ratio(
                            _rate(requests, client_errors, "revision"),
                            _rate(requests, RUNTIME, "revision"),
                        ),
                        "{{revision}} client errors",
                    ),
                ],
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Request latency by revision",
                "From a decoded request to its encoded response (p50, p95, p99).",
                "s",
                [
                    (
                        _quantile(q, "modelship_request_duration_seconds", RUNTIME, "revision"),
                        f"{{{{revision}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
            )
        )
        .with_panel(
            _graph(
                ids,
                "In-flight requests by revision",
                "Requests being served now, and per ready serving pod (the autoscaler's "
                "concurrency signal).",
                "short",
                [
                    (
                        f"sum by (revision) (modelship_requests_in_flight{{{RUNTIME}}})",
                        "{{revision}} in flight",
                    ),
                    (
                        _ratio(
                            f"sum(modelship_requests_in_flight{{{RUNTIME}}})",
                            f"sum(modelship_ready{{{RUNTIME}}})",
                        ),
                        "per ready pod",
                    ),
                ],
                minimum=0,
            )
        )
        .with_row(_row(ids, "Batching"))
        .with_panel(
            _graph(
                ids,
                "Batch size by revision",
                "Per request: how many requests shared its model execution (mean and p95).",
                "short",
                [
                    (
                        _ratio(
                            _rate("modelship_batch_size_sum", RUNTIME, "revision"),
                            _rate("modelship_batch_size_count", RUNTIME, "revision"),
                        ),
                        "{{revision}} mean",
                    ),
                    (
                        _quantile(0.95, "modelship_batch_size", RUNTIME, "revision"),
                        "{{revision}} p95",
                    ),
                ],
                span=8,
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Queue time by revision",
                "Time a request waited for the model: batching queue and executor (p50, p99).",
                "s",
                [
                    (
                        _quantile(q, "modelship_queue_duration_seconds", RUNTIME, "revision"),
                        f"{{{{revision}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ],
                span=8,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Inference time by revision",
                "ONNX Runtime time of the batch that carried a request (p50, p99).",
                "s",
                [
                    (
                        _quantile(q, "modelship_inference_duration_seconds", RUNTIME, "revision"),
                        f"{{{{revision}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ],
                span=8,
            )
        )
        .with_row(_row(ids, "Accuracy from delayed labels"))
        .with_panel(
            _graph(
                ids,
                f"Accuracy by revision ({ACCURACY_WINDOW} window)",
                "Labelled classification rows that matched their label over all labelled rows, "
                f"in the trailing {ACCURACY_WINDOW}. Empty until labels arrive.",
                "percentunit",
                [
                    (
                        _ratio(
                            "sum by (revision) (increase(modelship_feedback_correct_total"
                            f"{{{RUNTIME}}}[{ACCURACY_WINDOW}]))",
                            "sum by (revision) (increase(modelship_feedback_predictions_total"
                            f"{{{RUNTIME}}}[{ACCURACY_WINDOW}]))",
                        ),
                        "{{revision}}",
                    )
                ],
                minimum=0,
                maximum=1,
            )
        )
        .with_panel(
            _graph(
                ids,
                f"Mean absolute error by revision ({ACCURACY_WINDOW} window)",
                "Regression models: mean |prediction - label| over labelled rows in the "
                f"trailing {ACCURACY_WINDOW}.",
                "short",
                [
                    (
                        _ratio(
                            "sum by (revision) (increase(modelship_feedback_absolute_error_total"
                            f"{{{RUNTIME}}}[{ACCURACY_WINDOW}]))",
                            "sum by (revision) (increase(modelship_feedback_predictions_total"
                            f"{{{RUNTIME}}}[{ACCURACY_WINDOW}]))",
                        ),
                        "{{revision}}",
                    )
                ],
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Labels per second by revision",
                "Labels counted, labels naming a prediction no pod holds, labels that cannot "
                "be compared, and predictions dropped unlabelled.",
                "short",
                [
                    (
                        _rate("modelship_feedback_predictions_total", RUNTIME, "revision"),
                        "{{revision}} counted",
                    ),
                    (
                        _rate("modelship_feedback_unknown_ids_total", RUNTIME, "revision"),
                        "{{revision}} unknown",
                    ),
                    (
                        _rate("modelship_feedback_invalid_total", RUNTIME, "revision"),
                        "{{revision}} invalid",
                    ),
                    (
                        _rate("modelship_feedback_predictions_evicted_total", RUNTIME, "revision"),
                        "{{revision}} evicted",
                    ),
                ],
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Predictions waiting for a label",
                "Predictions the serving pods hold until their label arrives.",
                "short",
                [
                    (
                        f"sum by (revision) (modelship_feedback_predictions_held{{{RUNTIME}}})",
                        "{{revision}}",
                    )
                ],
                minimum=0,
            )
        )
        .with_row(_row(ids, "Scaling"))
        .with_panel(
            _graph(
                ids,
                "Replicas: desired vs ready",
                "The operator's desired and ready serving replicas, and the serving pods that "
                "report themselves warmed up.",
                "short",
                [
                    (f"max(modelship_model_deployment_replicas{{{OPERATOR}}})", "desired"),
                    (f"max(modelship_model_deployment_ready_replicas{{{OPERATOR}}})", "ready"),
                    (f"sum(modelship_ready{{{RUNTIME}}})", "serving pods ready"),
                ],
                span=24,
                minimum=0,
            )
        )
    )
    dashboard = _to_dict(builder)
    _complete_prometheus_annotations(dashboard)
    return dashboard


def _complete_prometheus_annotations(dashboard: dict[str, Any]) -> None:
    # The SDK's AnnotationQuery has `expr` only; Grafana's Prometheus annotation support also
    # reads these top-level fields (title and tags from the series' labels, the query step).
    for annotation in dashboard["annotations"]["list"]:
        annotation.update(
            {"step": "1m", "titleFormat": "{{action}}", "tagKeys": "action", "textFormat": ""}
        )


def build_fleet_dashboard() -> dict[str, Any]:
    """The fleet overview: every model's traffic, errors, p99 and phase, and the operator."""
    ids = _Ids()
    requests = "modelship_requests_total"
    builder = (
        dashboard_builder.Dashboard("modelship / fleet")
        .uid(FLEET_UID)
        .description(
            "Every ModelDeployment's request rate, error ratio, p99 latency and phase, and the "
            "health of the modelship operator."
        )
        .tags(TAGS)
        .links(_links())
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .with_variable(_datasource_variable())
        .with_variable(
            _label_variable(
                "namespace",
                "Namespace",
                "label_values(modelship_requests_total, namespace)",
                multi=True,
            )
        )
        .with_variable(
            _label_variable(
                "model",
                "Model",
                'label_values(modelship_requests_total{namespace=~"$namespace"}, model)',
                multi=True,
            )
        )
        .with_variable(
            _label_variable(
                "operator_job",
                "Operator job",
                "label_values(modelship_model_deployments, job)",
            ).current(model.VariableOption(text=OPERATOR_JOB, value=OPERATOR_JOB))
        )
        .with_row(_row(ids, "Models"))
        .with_panel(
            table.Panel()
            .id(ids.next())
            .title("ModelDeployments")
            .description("Phase and replicas of every ModelDeployment the operator knows.")
            .datasource(DATASOURCE)
            .span(24)
            .height(8)
            .targets(
                [
                    _instant(
                        "max by (namespace, name, phase) "
                        f"(modelship_model_deployment_phase{{{FLEET_OPERATOR}}}) == 1",
                        "",
                        "A",
                        as_table=True,
                    ),
                    _instant(
                        "max by (namespace, name) "
                        f"(modelship_model_deployment_replicas{{{FLEET_OPERATOR}}})",
                        "",
                        "B",
                        as_table=True,
                    ),
                    _instant(
                        "max by (namespace, name) "
                        f"(modelship_model_deployment_ready_replicas{{{FLEET_OPERATOR}}})",
                        "",
                        "C",
                        as_table=True,
                    ),
                ]
            )
            .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(
                model.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "excludeByName": {"Time": True, "Value #A": True},
                        "renameByName": {
                            "name": "model",
                            "Value #B": "desired replicas",
                            "Value #C": "ready replicas",
                        },
                    },
                )
            )
        )
        .with_panel(
            _graph(
                ids,
                "Requests per second by model",
                "All revisions and outcomes of each model.",
                "reqps",
                [(_rate(requests, FLEET_RUNTIME, "namespace, model"), "{{namespace}}/{{model}}")],
                span=8,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Server error ratio by model",
                "Server errors over all requests of each model.",
                "percentunit",
                [
                    (
                        _ratio(
                            _rate(
                                requests,
                                f'{FLEET_RUNTIME}, outcome="server_error"',
                                "namespace, model",
                            ),
                            _rate(requests, FLEET_RUNTIME, "namespace, model"),
                        ),
                        "{{namespace}}/{{model}}",
                    )
                ],
                span=8,
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "p99 latency by model",
                "99th percentile of request duration, all revisions of each model.",
                "s",
                [
                    (
                        _quantile(
                            0.99,
                            "modelship_request_duration_seconds",
                            FLEET_RUNTIME,
                            "namespace, model",
                        ),
                        "{{namespace}}/{{model}}",
                    )
                ],
                span=8,
            )
        )
        .with_row(_row(ids, "Operator"))
        .with_panel(
            _stat(
                ids,
                "Operator up",
                "Prometheus' scrape health of each operator pod (1 = up).",
                "none",
                [(f"up{{{OPERATOR_SELF}}}", "{{pod}}")],
            )
        )
        .with_panel(
            _stat(
                ids,
                "ModelDeployments by phase",
                "How many ModelDeployments are in each phase.",
                "none",
                [(f"sum by (phase) (modelship_model_deployments{{{OPERATOR_SELF}}})", "{{phase}}")],
                span=12,
            )
        )
        .with_panel(
            _stat(
                ids,
                "Since the last full resync",
                "Seconds since the periodic resync last went through every ModelDeployment.",
                "s",
                [
                    (
                        "time() - max(modelship_resync_last_completed_timestamp_seconds"
                        f"{{{OPERATOR_SELF}}})",
                        "since resync",
                    )
                ],
                text_mode=common.BigValueTextMode.VALUE,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Reconciles per second by trigger",
                "Reconciles of ModelDeployments, by what triggered them.",
                "ops",
                [
                    (
                        _rate(
                            "modelship_reconcile_duration_seconds_count", OPERATOR_SELF, "trigger"
                        ),
                        "{{trigger}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Reconcile errors per second by reason",
                "Reconciles that failed; 0 when none failed.",
                "ops",
                [
                    (
                        _rate("modelship_reconcile_errors_total", OPERATOR_SELF, "reason")
                        + " or on() vector(0)",
                        "{{reason}}",
                    )
                ],
                span=8,
                minimum=0,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Reconcile duration",
                "Time of one reconcile (p50, p99).",
                "s",
                [
                    (
                        _quantile(q, "modelship_reconcile_duration_seconds", OPERATOR_SELF, ""),
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ],
                span=8,
            )
        )
        .with_panel(
            _graph(
                ids,
                "Kubernetes API requests per second",
                "Requests of the reconciler to the Kubernetes API, by method and resource.",
                "reqps",
                [
                    (
                        _rate("modelship_api_requests_total", OPERATOR_SELF, "method, resource"),
                        "{{method}} {{resource}}",
                    )
                ],
            )
        )
        .with_panel(
            _graph(
                ids,
                "Build Jobs",
                "Build Jobs started, succeeded and failed per second.",
                "ops",
                [
                    (
                        _rate("modelship_builds_total", OPERATOR_SELF, "outcome")
                        + " or on() vector(0)",
                        "{{outcome}}",
                    )
                ],
                minimum=0,
            )
        )
    )
    return _to_dict(builder)


def render_json(dashboard: dict[str, Any]) -> str:
    """The text committed for a dashboard (stable key order, one trailing newline)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, Callable[[], dict[str, Any]]]:
    """Every committed file and the builder it comes from."""
    return {
        MANIFESTS_DIR / "model.json": build_model_dashboard,
        MANIFESTS_DIR / "fleet.json": build_fleet_dashboard,
        PACKAGE_DIR / "model.json": build_model_dashboard,
        PACKAGE_DIR / "fleet.json": build_fleet_dashboard,
    }


def texts() -> generated_files.Outputs:
    """Every committed file and its text."""
    return {path: (lambda build=build: render_json(build())) for path, build in outputs().items()}


def stale_files() -> list[Path]:
    """The committed files that differ from a fresh generation."""
    return generated_files.stale(texts())


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the dashboard JSON files."""
    return generated_files.main(argv, script="hack/dashboards.py", doc=__doc__, outputs=texts())


if __name__ == "__main__":
    sys.exit(main())
