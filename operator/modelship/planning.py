"""Pure planning: (spec, observed children) -> the children to apply, scale and delete."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from modelship import api, naming, render
from modelship.settings import OperatorSettings

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


@dataclass(frozen=True)
class ObservedDeployment:
    """The serving Deployment as read from the cluster (or as returned by an apply)."""

    body: dict[str, Any]
    generation: int
    revision: str | None
    spec_replicas: int
    replicas: int
    ready_replicas: int
    rolled_out: bool

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ObservedDeployment:
        """Read the rollout facts from a Deployment object."""
        meta, spec = body.get("metadata", {}), body.get("spec", {})
        status = body.get("status") or {}
        template_meta = (spec.get("template") or {}).get("metadata") or {}
        revision = (template_meta.get("annotations") or {}).get(naming.REVISION_ANNOTATION)
        wanted = int(spec.get("replicas", 1))
        current = status.get("observedGeneration", 0) >= meta.get("generation", 1)
        updated = int(status.get("updatedReplicas", 0))
        total = int(status.get("replicas", 0))
        ready = int(status.get("readyReplicas", 0))
        return cls(
            body=body,
            generation=int(meta.get("generation", 0)),
            revision=revision,
            spec_replicas=wanted,
            replicas=total,
            ready_replicas=ready,
            rolled_out=current and updated == wanted and total == wanted and ready >= wanted,
        )


@dataclass(frozen=True)
class Observed:
    """Everything planning needs to know about a ModelDeployment's children."""

    jobs: tuple[ObservedJob, ...] = ()
    deployment: ObservedDeployment | None = None
    service: dict[str, Any] | None = None

    def job(self, revision: str) -> ObservedJob | None:
        """The build Job of a revision, if any."""
        return next((j for j in self.jobs if j.revision == revision), None)


@dataclass(frozen=True)
class Plan:
    """What one reconcile changes."""

    revision: str
    apply: tuple[dict[str, Any], ...] = ()
    scale_to: int | None = None
    delete_jobs: tuple[str, ...] = ()
    serving_revision: str | None = None
    build_created: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def writes(self) -> int:
        """Number of API writes the plan needs."""
        return len(self.apply) + len(self.delete_jobs) + (self.scale_to is not None)


def contains(actual: Any, desired: Any) -> bool:
    """Whether every field of desired is present with the same value in actual.

    Fields the apiserver defaults (and other managers own) are ignored, so an unchanged child
    is never re-applied; quantities written as integers match their canonical string form.
    """
    if isinstance(desired, dict):
        # The apiserver drops empty lists and maps (`envFrom: []`): absent is what they read as.
        return isinstance(actual, dict) and all(
            contains(actual[k], v) if k in actual else v in ([], {}) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(actual, bool):
        return type(actual) is type(desired) and actual == desired
    if isinstance(desired, int | float) and isinstance(actual, str):
        return str(desired) == actual
    return bool(actual == desired)


def plan(md: api.ModelDeployment, observed: Observed, settings: OperatorSettings) -> Plan:
    """Decide the children of a ModelDeployment from its spec and what exists."""
    revision = md.spec.revision()
    job = observed.job(revision)
    apply: list[dict[str, Any]] = []
    build_created = False
    if job is None:
        # A Job's pod template is immutable: it is created once per revision, never patched.
        apply.append(render.render_build_job(md, revision, settings))
        build_created = True

    deployment = observed.deployment
    scale_to: int | None = None
    serving: str | None = deployment.revision if deployment is not None else None
    if job is not None and job.state == "Succeeded":
        desired = render.render_deployment(md, revision, settings)
        if deployment is None or not contains(deployment.body, desired):
            apply.append(desired)
        serving = revision
    elif deployment is not None and deployment.spec_replicas != md.spec.desired_replicas():
        # The old revision keeps serving until the new one is built; only its size follows spec.
        scale_to = md.spec.desired_replicas()

    if serving is not None:
        service = render.render_service(md)
        if observed.service is None or not contains(observed.service, service):
            apply.append(service)

    return Plan(
        revision=revision,
        apply=tuple(apply),
        scale_to=scale_to,
        delete_jobs=_stale_jobs(observed.jobs, revision, serving, settings.kept_build_jobs),
        serving_revision=serving,
        build_created=build_created,
    )


def _stale_jobs(
    jobs: tuple[ObservedJob, ...], revision: str, serving: str | None, keep: int
) -> tuple[str, ...]:
    stale: list[str] = []
    kept = 0
    for job in sorted(jobs, key=lambda j: (j.created, j.name), reverse=True):
        if job.revision in (revision, serving):
            continue
        if job.state == "Running":
            stale.append(job.name)  # superseded by a newer spec: stop wasting the node
        elif kept < keep:
            kept += 1
        else:
            stale.append(job.name)
    return tuple(stale)
