"""The PromQL of a dashboard and the metric and label names it reads (shared with tests/e2e)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
METRICS_DOC = ROOT / "docs" / "metrics.md"

# Labels Prometheus adds to every scraped series (docs/metrics.md, "Where they come from").
TARGET_LABELS = frozenset({"namespace", "pod", "container", "job", "instance"})
# Series Prometheus makes itself for every target.
SYNTHETIC_SERIES = {"up": frozenset({"job", "instance", "namespace", "pod", "container"})}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![0-9.A-Za-z_:$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard and where it sits."""

    where: str
    expr: str
    annotation: bool = False


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """Every panel target's and every annotation's expression (rows' nested panels too)."""
    title = dashboard.get("title", "?")
    panels = list(dashboard.get("panels", []))
    for panel in panels:
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if "expr" in target:
                yield Query(
                    f"{title} / {panel.get('title')} / {target.get('refId')}", target["expr"]
                )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield Query(f"{title} / annotation {annotation['name']}", annotation["expr"], True)


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (function names, keywords and labels left out)."""
    text = _without_strings(expr)
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def matcher_labels(expr: str) -> dict[str, set[str]]:
    """For each selected series name, the labels its matchers name."""
    found: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(_without_strings(expr)):
        name = match.group(1) or ""
        found.setdefault(name, set()).update(_MATCHER_LABEL.findall(match.group(2)))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels of by/without/on/ignoring/group_* clauses."""
    labels: set[str] = set()
    for match in _GROUPING.finditer(_without_strings(expr)):
        labels.update(label.strip() for label in match.group(2).split(",") if label.strip())
    return labels


@dataclass(frozen=True)
class Documented:
    """A metric of docs/metrics.md."""

    name: str
    type: str
    source: str  # "runtime" | "operator"
    labels: frozenset[str]

    def series(self) -> set[str]:
        """The series names Prometheus stores for it."""
        if self.type == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}

    def series_labels(self, series: str) -> frozenset[str]:
        """Labels a stored series of this metric carries (bucket series add `le`)."""
        extra = {"le"} if series.endswith("_bucket") and self.type == "histogram" else set()
        return self.labels | TARGET_LABELS | extra


_ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(counter|gauge|histogram)\s*\|([^|]*)\|")
_RUNTIME_COMMON = re.compile(r"Every series carries (.*?)\.\s", re.S)


def documented_metrics() -> dict[str, Documented]:
    """The metric tables of docs/metrics.md, keyed by stored series name."""
    text = METRICS_DOC.read_text()
    common_match = _RUNTIME_COMMON.search(text)
    runtime_common = (
        set(re.findall(r"`([a-z_]+)`", common_match.group(1))) if common_match else set()
    )
    source = ""
    by_series: dict[str, Documented] = {}
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line.removeprefix("## ").strip().lower()
            source = {"serving runtime": "runtime", "operator": "operator"}.get(heading, "")
            continue
        row = _ROW.match(line)
        if row is None or not source:
            continue
        # A label cell lists labels separated by commas, each optionally `= value | value`.
        labels = set()
        for part in row.group(3).split(","):
            first = re.search(r"`([a-z_]+)`", part)
            if first:
                labels.add(first.group(1))
        if source == "runtime":
            labels |= runtime_common
        metric = Documented(row.group(1), row.group(2), source, frozenset(labels))
        for series in metric.series():
            by_series[series] = metric
    return by_series
