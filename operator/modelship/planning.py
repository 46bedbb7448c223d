"""Pure planning: (spec, observed children, prior status, now) -> every child to create, apply,
scale and delete: the build Job, the serving children of each revision, the monitoring children
and the feedback-key Secret, through this one path."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from dataclasses import dataclass, field
from typing import Any

from modelship import api, monitoring, naming, render, rollout, traffic
from modelship import pods as podstate
from modelship.analysis.checks import IntervalVerdict
from modelship.builds import BuildSummary, ObservedJob, stale_jobs
from modelship.drift import contains
from modelship.revisions import RevisionPlan, Serving, plan_revisions
from modelship.settings import OperatorSettings

# A scheduled pod that has started no container for this long is taken as stuck (a missing
# volume source); image pulls are local on our nodes, a normal start takes a second or two.
STUCK_SECONDS = 10.0


@dataclass(frozen=True)
class ObservedChild:
    """A monitoring child as read: its body (None when absent), or its kind not served at all
    (prometheus-operator's CRDs not installed)."""

    kind: monitoring.Kind
    name: str
    body: dict[str, Any] | None = None
    served: bool = True


@dataclass(frozen=True)
class Observed:
    """Everything planning needs to know about a ModelDeployment's children."""

    jobs: tuple[ObservedJob, ...] = ()
    serving: Serving = field(default_factory=Serving)
    monitoring: tuple[ObservedChild, ...] = ()
    # Every serving pod of the model (what failing pods report; pods stuck before starting).
    pods: tuple[dict[str, Any], ...] = ()
    # The routes and Gateways (read only when traffic.observed_needed).
    gateway: traffic.Observed | None = None

    @functools.cached_property
    def owned(self) -> frozenset[tuple[str, str]]:
        """(kind, name) of every Job, Deployment and Service the model owns."""
        serving = self.serving
        services = [*serving.revision_services, *([serving.service] if serving.service else [])]
        return frozenset(
            [("Job", j.name) for j in self.jobs]
            + [("Deployment", d.name) for d in serving.deployments]
            + [("Service", s["metadata"]["name"]) for s in services]
        )

    def job(self, revision: str) -> ObservedJob | None:
        """The build Job of a revision, if any."""
        return next((j for j in self.jobs if j.revision == revision), None)


@dataclass(frozen=True)
class MonitoringPlan:
    """Monitoring children to apply and delete, and the outcome if every request succeeds.

    They are best effort: a model serves without them, so a failed request only changes the
    outcome (the Monitoring condition), never the reconcile's."""

    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[tuple[monitoring.Kind, str], ...] = ()
    expected: monitoring.Outcome = field(default_factory=monitoring.Outcome)


@dataclass(frozen=True)
class Plan:
    """What one reconcile changes."""

    revision: str
    apply: tuple[dict[str, Any], ...] = ()
    # Created once, never read or patched (the feedback-key Secret).
    create: tuple[dict[str, Any], ...] = ()
    delete_jobs: tuple[str, ...] = ()
    build_created: bool = False
    revisions: RevisionPlan = field(default_factory=RevisionPlan)
    monitoring: MonitoringPlan = field(default_factory=MonitoringPlan)
    # The rollout-action annotation was read: remove it (acted on, or refused with this error).
    clear_action: bool = False
    action_error: str | None = None
    # Why nothing new is built or started: a host path outside development mode.
    refused: str | None = None

    @property
    def writes(self) -> int:
        """Number of API writes the plan needs."""
        rev, mon = self.revisions, self.monitoring
        return (
            len(self.apply)
            + len(self.create)
            + len(self.delete_jobs)
            + len(rev.apply)
            + len(rev.scale)
            + len(rev.delete)
            + len(rev.routes)
            + len(rev.drop_routes)
            + len(mon.apply)
            + len(mon.delete)
        )


def plan(
    md: api.ModelDeployment,
    observed: Observed,
    settings: OperatorSettings,
    prior: api.ModelDeploymentStatus,
    now: datetime.datetime,
    *,
    new_key: bytes = b"",
    measured: IntervalVerdict | None = None,
    build: BuildSummary | None = None,
) -> Plan:
    """Decide the children of a ModelDeployment from its spec, what exists and what its status
    remembers (retired revisions, children made before). `new_key` signs prediction tokens if
    the model has no key Secret yet; `build` is the current revision's finished build."""
    revision = md.spec.revision()
    job = observed.job(revision)
    # A host path outside development mode: nothing new is built or started (what serves
    # keeps serving), and status says which setting would allow it.
    refused = settings.host_path_refusal(md.spec.model.uri)
    # A revision that has a Deployment was built and served before: going back needs no build.
    built = observed.serving.built(revision) or (job is not None and job.state == "Succeeded")
    built = built and refused is None
    apply: list[dict[str, Any]] = []
    build_created = False
    if job is None and not built and refused is None:
        # A Job's pod template is immutable: it is created once per revision, never patched.
        apply.append(render.render_build_job(md, revision, settings))
        build_created = True
    create: list[dict[str, Any]] = []
    # Status remembers the key Secret was made, so a model at rest makes no request for it. The
    # operator may not read Secrets: a pod that cannot start is how a deleted key shows, and
    # creating it again is harmless when it exists (the apiserver answers 409).
    stuck, recheck = podstate.stuck_before_start(observed.pods, now, STUCK_SECONDS)
    if prior.feedback_key_secret != naming.feedback_key_name(md.name) or stuck:
        create.append(render.render_feedback_key_secret(md, new_key))

    action, action_error = rollout.parse_action(md.annotations)
    # The pods fetch only the model file this revision's build recorded; a revision served
    # before keeps the digest its Deployment carries.
    current = observed.serving.deployment(revision)
    digest = build.digest if build is not None and build.ok else None
    if digest is None and current is not None:
        digest = current.digest
    revisions = plan_revisions(
        md,
        observed.serving,
        built=built,
        digest=digest,
        prior=prior.revisions,
        pods=observed.pods,
        action=action,
        canary_before=prior.canary,
        measured=measured,
        gateway=observed.gateway,
        settings=settings,
        now=now,
    )
    if recheck is not None:
        later = revisions.requeue_after
        revisions = dataclasses.replace(
            revisions, requeue_after=recheck if later is None else min(later, recheck)
        )
    kept = {revision} | {r.revision for r in revisions.retired}
    if revisions.stable is not None:
        kept.add(revisions.stable)
    return Plan(
        revision=revision,
        apply=tuple(apply),
        create=tuple(create),
        delete_jobs=stale_jobs(observed.jobs, kept, settings.kept_build_jobs),
        build_created=build_created,
        revisions=revisions,
        monitoring=plan_monitoring(md, observed.monitoring, prior, settings.runbook_url),
        clear_action=rollout.ACTION_ANNOTATION in md.annotations,
        action_error=action_error,
        refused=refused,
    )


def plan_monitoring(
    md: api.ModelDeployment,
    observed: tuple[ObservedChild, ...],
    prior: api.ModelDeploymentStatus,
    runbook_url: str,
) -> MonitoringPlan:
    """Apply the wanted monitoring children that differ, delete the unwanted ones an earlier
    reconcile made; a child of that name owned by something else is left alone, and said."""
    seen = {(c.kind, c.name): c for c in observed}
    apply: list[dict[str, Any]] = []
    delete: list[tuple[monitoring.Kind, str]] = []
    present: dict[monitoring.Kind, str] = {}
    not_served: list[monitoring.Kind] = []
    errors: list[str] = []
    for child in monitoring.desired(md, runbook_url):
        if child.body is None:
            if monitoring.recorded(prior, child.kind) == child.name:
                delete.append((child.kind, child.name))
            continue
        found = seen.get((child.kind, child.name), ObservedChild(child.kind, child.name))
        if not found.served:
            not_served.append(child.kind)
            continue
        if found.body is not None and not naming.owned_by(found.body, md.uid):
            errors.append(f"{child.kind} {child.name} exists and is not owned by md/{md.name}")
            continue
        if found.body is None or not contains(found.body, child.body):
            apply.append(child.body)
        present[child.kind] = child.name
    return MonitoringPlan(
        apply=tuple(apply),
        delete=tuple(delete),
        expected=monitoring.Outcome(present, tuple(not_served), tuple(errors)),
    )


def wanted_monitoring(md: api.ModelDeployment, runbook_url: str) -> list[monitoring.Child]:
    """The monitoring children to read before planning (the unwanted ones are never read)."""
    return [c for c in monitoring.desired(md, runbook_url) if c.body is not None]
