"""Build Jobs as the operator observes them, the summary a build reports, and which finished
Jobs are kept (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from modelship import api, naming

BuildState = Literal["Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class BuildSummary:
    """The build's own report, read back from its pod's termination message."""

    ok: bool
    selected: str | None = None
    source_sha256: str | None = None
    variants: tuple[api.BuildVariant, ...] = ()
    error: str | None = None

    @property
    def digest(self) -> str | None:
        """sha256 of the selected variant."""
        for variant in self.variants:
            if variant.selected or variant.name == self.selected:
                return variant.sha256
        return None


def read_pod(pod: dict[str, Any]) -> tuple[BuildSummary | None, str | None, str] | None:
    """What a build pod reports once its build step finished: the summary, the termination
    message that explains the outcome, and the step whose log tells more ("build", or
    "publish" when the build succeeded and the store refused it). None before that."""
    status = pod.get("status") or {}
    finished: dict[str, dict[str, Any]] = {}
    # The build is an init container, the publish the pod's container.
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated:
            finished[str(cs.get("name"))] = terminated
    if "build" not in finished:
        return None
    message = finished["build"].get("message")
    summary = parse_summary(message)
    published = finished.get("publish")
    if summary is not None and summary.ok and published and published.get("exitCode"):
        said = published.get("message") or f"exit code {published.get('exitCode')}"
        failed = replace(summary, ok=False, error=f"publishing failed: {said.strip()}")
        return failed, said, "publish"
    return summary, message, "build"


def parse_summary(text: str | None) -> BuildSummary | None:
    """Parse a --summary-file JSON; None when absent or not a summary (e.g. a log tail)."""
    if not text:
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or "ok" not in raw:
        return None
    variants: list[api.BuildVariant] = []
    for item in raw.get("variants") or []:
        if isinstance(item, dict) and "name" in item:
            fields = ("name", "sha256", "accuracy", "p50Ms", "p99Ms")
            known = {k: item[k] for k in fields if k in item}
            variants.append(api.BuildVariant(**known, selected=bool(item.get("selected"))))
    return BuildSummary(
        ok=bool(raw["ok"]),
        selected=raw.get("selected"),
        source_sha256=raw.get("sourceSha256"),
        variants=tuple(variants),
        error=raw.get("error"),
    )


@dataclass(frozen=True)
class BuildOutcome:
    """Where the current revision's build stands, as one reconcile read it."""

    state: BuildState
    summary: BuildSummary | None = None
    log_tail: str | None = None
    message: str = ""


@dataclass(frozen=True)
class ObservedJob:
    """A build Job as read from the cluster."""

    name: str
    revision: str
    state: BuildState
    created: str
    message: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ObservedJob:
        """Read the facts planning needs from a Job object."""
        meta = body.get("metadata", {})
        state: BuildState = "Running"
        message = ""
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                state = "Succeeded"
            elif cond.get("type") == "Failed":
                state = "Failed"
                message = f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".strip(": ")
        return cls(
            name=meta.get("name", ""),
            revision=(meta.get("labels") or {}).get(naming.REVISION_LABEL, ""),
            state=state,
            created=meta.get("creationTimestamp", ""),
            message=message,
        )


def stale_jobs(jobs: tuple[ObservedJob, ...], kept: set[str], keep: int) -> tuple[str, ...]:
    """Build Jobs to delete: superseded running ones, and finished ones past the newest `keep`
    (a Job of a revision still kept, serving or wanted stays: going back needs no rebuild)."""
    stale: list[str] = []
    count = 0
    for job in sorted(jobs, key=lambda j: (j.created, j.name), reverse=True):
        if job.revision in kept:
            continue
        if job.state == "Running":
            stale.append(job.name)  # superseded by a newer spec: stop wasting the node
        elif count < keep:
            count += 1
        else:
            stale.append(job.name)
    return tuple(stale)
