"""The lifecycle of a ModelDeployment's revisions (pure): a Deployment and a Service per
revision; the model's Service moves to a new revision once all its pods are ready; a replaced
revision drains, then sleeps at zero replicas for a while, so going back needs no rebuild."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelship import api, naming, render, rollout, traffic
from modelship import pods as podstate
from modelship.analysis.checks import IntervalVerdict
from modelship.drift import contains
from modelship.settings import OperatorSettings
from modelship.timestamps import format_time, parse_time


@dataclass(frozen=True)
class ObservedDeployment:
    """A serving Deployment as read from the cluster (or as returned by an apply)."""

    body: dict[str, Any]
    name: str
    generation: int
    revision: str | None
    spec_replicas: int
    replicas: int
    ready_replicas: int
    rolled_out: bool
    # Made by operators before per-revision Deployments: named like the model, its selector
    # spans every revision; migrated away by the first reconcile that sees it.
    legacy: bool
    # The Deployment controller's own verdict: no progress within progressDeadlineSeconds.
    deadline_exceeded: bool = False
    # The model file's sha256 its pods require (None: made before artifacts were pinned).
    digest: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ObservedDeployment:
        """Read the rollout facts from a Deployment object."""
        meta, spec = body.get("metadata", {}), body.get("spec", {})
        status = body.get("status") or {}
        template_meta = (spec.get("template") or {}).get("metadata") or {}
        revision = (template_meta.get("annotations") or {}).get(naming.REVISION_ANNOTATION)
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        wanted = int(spec.get("replicas", 1))
        current = status.get("observedGeneration", 0) >= meta.get("generation", 1)
        updated = int(status.get("updatedReplicas", 0))
        total = int(status.get("replicas", 0))
        ready = int(status.get("readyReplicas", 0))
        return cls(
            body=body,
            name=meta.get("name", ""),
            generation=int(meta.get("generation", 0)),
            revision=revision,
            spec_replicas=wanted,
            replicas=total,
            ready_replicas=ready,
            rolled_out=current and updated == wanted and total == wanted and ready >= wanted,
            legacy=naming.REVISION_LABEL not in selector,
            deadline_exceeded=any(
                c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
                for c in status.get("conditions") or []
            ),
            digest=(meta.get("annotations") or {}).get(naming.DIGEST_ANNOTATION),
        )


@dataclass(frozen=True)
class Serving:
    """The serving children as observed: every revision's Deployment and Service, and the
    model's Service."""

    deployments: tuple[ObservedDeployment, ...] = ()
    service: dict[str, Any] | None = None
    revision_services: tuple[dict[str, Any], ...] = ()

    def deployment(self, revision: str) -> ObservedDeployment | None:
        """The Deployment of a revision (never the legacy one), if any."""
        return next((d for d in self.deployments if d.revision == revision and not d.legacy), None)

    def built(self, revision: str) -> bool:
        """Whether some Deployment (a legacy one included) serves or served this revision: its
        build was published, so it needs none."""
        return any(d.revision == revision for d in self.deployments)

    def revision_service(self, name: str) -> dict[str, Any] | None:
        """A revision's Service, if any."""
        return next((s for s in self.revision_services if s["metadata"]["name"] == name), None)

    def selected(self) -> ObservedDeployment | None:
        """The Deployment whose pods the model's Service selects now (with no Service yet, a
        legacy Deployment: it carried the traffic)."""
        if self.service is None:
            return next((d for d in self.deployments if d.legacy), None)
        selector = (self.service.get("spec") or {}).get("selector") or {}
        annotations = (self.service.get("metadata") or {}).get("annotations") or {}
        # During a canary the selector spans revisions; the annotation still names the stable.
        selected = selector.get(naming.REVISION_LABEL) or annotations.get(naming.STABLE_ANNOTATION)
        if selected is None:
            return next((d for d in self.deployments if d.legacy), None)
        return self.deployment(selected)


@dataclass(frozen=True)
class RevisionPlan:
    """What the revision lifecycle changes in one reconcile."""

    apply: tuple[dict[str, Any], ...] = ()
    scale: tuple[tuple[str, int], ...] = ()
    delete: tuple[tuple[str, str], ...] = ()
    # The Gateway's routes (gatewayAPI router): applied before the rest, so a revision leaves
    # them before its pods are scaled down, and routes no longer wanted ((kind, name)).
    routes: tuple[dict[str, Any], ...] = ()
    drop_routes: tuple[tuple[str, str], ...] = ()
    # The revision the model's Service selects once the plan is carried out, and its Deployment.
    stable: str | None = None
    stable_deployment: str | None = None
    # Set when this plan moves the Service: the revision that stops receiving traffic.
    replaced: str | None = None
    retired: tuple[api.RetiredRevision, ...] = ()
    # Deployments scaled to zero by this plan (drained, out of traffic): one Event each.
    slept: tuple[api.RetiredRevision, ...] = ()
    # The current revision while its pods start (the deadline clock), or once it failed.
    starting: api.StartingRevision | None = None
    failed: api.FailedRevision | None = None
    # The canary's state after this reconcile, and the decision it took (if any).
    canary: api.Canary | None = None
    decision: api.Decision | None = None
    # Seconds until the object must be reconciled again although nothing changes (a drain
    # ending, a deadline).
    requeue_after: float | None = None
    # What the Gateway said of the routes as read (gatewayAPI router).
    traffic: traffic.Verdict | None = None


def _plan_routes(
    md: api.ModelDeployment,
    serving: Serving,
    gateway: traffic.Observed | None,
    verdict: traffic.Verdict | None,
    *,
    target: _Target | None,
    canary: rollout.Step | None,
    revision: str,
) -> tuple[tuple[dict[str, Any], ...], tuple[tuple[str, str], ...], float | None]:
    """The routes to apply (weighted over the stable and the canary's Services), the routes no
    longer wanted, and when to look again at what the Gateway made of them."""
    name = naming.route_name(md.name)
    if gateway is None:
        return (), (), None
    wanted = traffic.route_kinds(md.spec) if rollout.gateway_routed(md.spec) else ()
    drop = tuple(
        (kind, name)
        for kind, found in gateway.routes.items()
        if found is not None and kind not in wanted
    )
    if not wanted or gateway.foreign or target is None or target.legacy:
        return (), drop, None if verdict is None else rollout.ROUTE_RECHECK_SECONDS
    if serving.revision_service(target.name) is None:
        # Made in this reconcile: a route naming a Service not there yet is refused
        # (BackendNotFound) and not every implementation looks again when it appears.
        return (), drop, rollout.ROUTE_POLL_SECONDS
    stable = (target.name, target.revision or "unknown")
    current = naming.revision_name(md.name, revision)
    weight, second = 0, None
    # The canary's Service exists from an earlier reconcile before it is ever weighted.
    if (
        canary is not None
        and canary.route == "both"
        and target.name != current
        and serving.revision_service(current) is not None
    ):
        second, weight = (current, revision), canary.traffic
    apply = []
    for body in render.render_routes(md, traffic.backends(stable, second, weight)):
        found = gateway.routes.get(body["kind"])
        if found is None or not contains(dict(found.body), body):
            apply.append(body)
    if apply:
        return tuple(apply), drop, rollout.ROUTE_POLL_SECONDS
    if verdict is not None and verdict.status == "True":
        return (), drop, None
    # Being taken up is a matter of a second; refused or unanswered waits for someone.
    taking = verdict is not None and verdict.reason == "Programming"
    return (), drop, rollout.ROUTE_POLL_SECONDS if taking else rollout.ROUTE_RECHECK_SECONDS


def plan_revisions(
    md: api.ModelDeployment,
    serving: Serving,
    *,
    built: bool,
    digest: str | None = None,
    prior: api.Revisions | None,
    pods: Sequence[dict[str, Any]] = (),
    action: rollout.Action | None = None,
    canary_before: api.Canary | None = None,
    measured: IntervalVerdict | None = None,
    gateway: traffic.Observed | None = None,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> RevisionPlan:
    """Decide the serving children of a ModelDeployment whose current revision is `built` or
    not yet, and its routes on the Gateway (`gateway`: what was read of them, gatewayAPI
    router only).

    `digest` is the sha256 the current revision's pods require of the model file they fetch.

    Until every wanted pod of the current revision is ready, the revision the Service selects
    keeps serving at the wanted size. A revision not ready within its progress deadline is
    failed: scaled to zero and left there until the spec changes.
    """
    revision = md.spec.revision()
    wanted = md.spec.desired_replicas()
    current = serving.deployment(revision)
    selected = serving.selected()
    prior = prior or api.Revisions()
    apply: list[dict[str, Any]] = []
    # The stable Deployment after this plan: what the model's Service selects.
    target: _Target | None = None
    if selected is not None:
        target = _Target(selected.name, selected.revision, selected.legacy)
    replaced: ObservedDeployment | None = None
    failed = prior.failed
    if failed is not None and (failed.revision != revision or failed.generation != md.generation):
        failed = None  # the spec changed: the revision gets a new chance
    if action == "retry":
        failed = None  # asked by hand: the same revision starts again
    starting: api.StartingRevision | None = None
    deadline_in: float | None = None
    canary: rollout.Step | None = None
    scale: list[tuple[str, int]] = []
    gatewayed = rollout.gateway_routed(md.spec)
    verdict = traffic.judge(md, gateway) if gateway is not None and gatewayed else None
    if built:
        identity = naming.RevisionIdentity.of(md, revision)
        replicas = wanted
        if (
            failed is None
            and rollout.uses_canary(md.spec)
            and selected is not None
            and not selected.legacy
            and selected is not current
        ):
            canary = _canary_step(
                md,
                identity,
                current=current,
                selected=selected,
                before=canary_before,
                action=action,
                measured=measured,
                routed=verdict.routed(identity.name) if verdict is not None else None,
                settings=settings,
                digest=digest,
                now=now,
            )
            replicas = canary.canary_replicas
            if canary.outcome == "rolled_back" and canary.decision is not None:
                failed = api.FailedRevision(
                    revision=revision,
                    generation=md.generation,
                    reason="RolledBack",
                    message=canary.decision.reason,
                    at=format_time(now),
                )
        desired = render.render_deployment(
            md, identity, settings, 0 if failed is not None else replicas, digest=digest
        )
        unchanged = current is not None and contains(current.body, desired)
        ready = failed is None and unchanged and current is not None and current.rolled_out
        established = prior.stable is not None and prior.stable.revision == revision
        if failed is None and not ready and not established:
            starting, deadline_in = _clock(md, prior.starting, now)
            if deadline_in <= 0 or (current is not None and current.deadline_exceeded):
                failed = _failure(md, identity, current, pods, now)
                starting, deadline_in, canary = None, None, None
                desired = render.render_deployment(md, identity, settings, 0, digest=digest)
                unchanged = current is not None and contains(current.body, desired)
        if not unchanged:
            apply.append(desired)
        own_service = render.render_revision_service(identity)
        found = serving.revision_service(identity.name)
        if found is None or not contains(found, own_service):
            apply.append(own_service)
        if canary is not None and selected is not None:
            if selected.spec_replicas != canary.stable_replicas:
                scale.append((selected.name, canary.stable_replicas))
            if canary.route == "canary":
                replaced, target = selected, _Target(identity.name, revision)
            elif (
                canary.route == "both"
                and not gatewayed
                and _quiet(serving, {selected.name, identity.name})
            ):
                # Only once no other revision has pods: the spanning selector would reach them.
                target = _Target(selected.name, selected.revision, with_canary=True)
        elif selected is None:
            # The first revision: nothing else serves, so the Service selects it at once.
            target = _Target(identity.name, revision)
        elif selected is not current and ready:
            replaced, target = selected, _Target(identity.name, revision)
    # The revision that serves follows the wanted size until it is replaced.
    if canary is None and (
        selected is not None
        and selected is not current
        and target is not None
        and target.name == selected.name
        and selected.spec_replicas != wanted
    ):
        scale.append((selected.name, wanted))

    if target is not None:
        selector = (
            naming.server_selector(md.name)
            if target.legacy or target.revision is None or target.with_canary
            else naming.RevisionIdentity.of(md, target.revision).selector
        )
        service = render.render_service(md, selector, None if target.legacy else target.revision)
        # `contains` reads a map as "at least these keys": a selector must match exactly.
        live = serving.service
        if (
            live is None
            or not contains(live, service)
            or (live.get("spec") or {}).get("selector") != selector
        ):
            apply.append(service)

    routes, drop_routes, route_requeue = _plan_routes(
        md, serving, gateway, verdict, target=target, canary=canary, revision=revision
    )
    keep = {naming.revision_name(md.name, revision)} | ({target.name} if target else set())
    retired, slept, delete, requeue = _retire(
        serving, prior.retired, keep=keep, replaced=replaced, settings=settings, now=now
    )
    scale += [(r.deployment, 0) for r in slept]
    if deadline_in is not None:
        requeue = deadline_in if requeue is None else min(requeue, deadline_in)
    if canary is not None and canary.requeue_after is not None:
        requeue = canary.requeue_after if requeue is None else min(requeue, canary.requeue_after)
    if route_requeue is not None:
        requeue = route_requeue if requeue is None else min(requeue, route_requeue)
    return RevisionPlan(
        apply=tuple(apply),
        scale=tuple(scale),
        delete=tuple(delete),
        routes=routes,
        drop_routes=drop_routes,
        traffic=verdict,
        stable=target.revision if target is not None else None,
        stable_deployment=target.name if target is not None else None,
        replaced=replaced.revision if replaced is not None else None,
        retired=tuple(retired),
        slept=tuple(slept),
        starting=starting,
        failed=failed,
        canary=canary.canary if canary is not None else None,
        decision=canary.decision if canary is not None else None,
        requeue_after=requeue,
    )


@dataclass(frozen=True)
class _Target:
    """The stable Deployment after a plan, and whether the Service spans the canary too."""

    name: str
    revision: str | None
    legacy: bool = False
    with_canary: bool = False


def _quiet(serving: Serving, besides: set[str]) -> bool:
    """Whether no Deployment but these has pods (wanted or still running)."""
    return all(
        d.spec_replicas == 0 and d.replicas == 0
        for d in serving.deployments
        if d.name not in besides
    )


def _canary_step(
    md: api.ModelDeployment,
    identity: naming.RevisionIdentity,
    *,
    current: ObservedDeployment | None,
    selected: ObservedDeployment,
    before: api.Canary | None,
    action: rollout.Action | None,
    measured: IntervalVerdict | None,
    routed: int | None,
    settings: OperatorSettings,
    digest: str | None,
    now: datetime.datetime,
) -> rollout.Step:
    """One step of the canary state machine on what the two Deployments show (and, under a
    Gateway, the canary weight it carries)."""
    canary_pods = None
    if current is not None:
        # Its pods count only when they run the current template (at whatever size).
        template = render.render_deployment(
            md, identity, settings, current.spec_replicas, digest=digest
        )
        fresh = contains(current.body, template)
        canary_pods = rollout.Pods(
            current.spec_replicas, current.ready_replicas, fresh and current.rolled_out
        )
    stable_pods = rollout.Pods(selected.spec_replicas, selected.ready_replicas, selected.rolled_out)
    return rollout.step(
        md.spec,
        identity.revision,
        selected.revision or "unknown",
        before,
        canary=canary_pods,
        stable=stable_pods,
        action=action,
        now=now,
        measured=measured,
        routed=routed,
    )


def _clock(
    md: api.ModelDeployment, before: api.StartingRevision | None, now: datetime.datetime
) -> tuple[api.StartingRevision, float]:
    """The starting revision's clock (kept from an earlier reconcile) and the seconds left."""
    revision = md.spec.revision()
    if before is not None and before.revision == revision:
        starting = before
    else:
        starting = api.StartingRevision(revision=revision, since=format_time(now))
    elapsed = (now - parse_time(starting.since)).total_seconds()
    return starting, md.spec.rollout.progress_deadline_seconds - elapsed


def _failure(
    md: api.ModelDeployment,
    identity: naming.RevisionIdentity,
    current: ObservedDeployment | None,
    pods: Sequence[dict[str, Any]],
    now: datetime.datetime,
) -> api.FailedRevision:
    """The record of a revision that missed its deadline, in its pods' own words."""
    own = podstate.selected(pods, identity.selector)
    ready = current.ready_replicas if current is not None else 0
    said = podstate.describe(own) or "its pods report no error (slow start? raise the deadline)"
    message = (
        f"revision {identity.revision} not ready within "
        f"{md.spec.rollout.progress_deadline_seconds}s ({ready}/{md.spec.desired_replicas()} "
        f"replicas ready): {said}"
    )
    return api.FailedRevision(
        revision=identity.revision,
        generation=md.generation,
        reason="ProgressDeadlineExceeded",
        message=message[:4096],
        at=format_time(now),
    )


def _is_legacy(serving: Serving, name: str) -> bool:
    return any(d.legacy and d.name == name for d in serving.deployments)


def _retire(
    serving: Serving,
    retired_before: Sequence[api.RetiredRevision],
    *,
    keep: set[str],
    replaced: ObservedDeployment | None,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> tuple[
    list[api.RetiredRevision],
    list[api.RetiredRevision],
    list[tuple[str, str]],
    float | None,
]:
    """Every Deployment neither serving nor starting is retired: drained for `drain_seconds`
    from when it left the Service, then scaled to zero (a legacy one is deleted), and deleted
    with its Service once more than `kept_revisions` newer ones are kept.

    Returns (still kept, to scale to zero now, (kind, name) to delete, seconds to the next drain
    end).
    """
    stamp = format_time(now)
    known = {r.deployment: r for r in retired_before}
    retired: list[api.RetiredRevision] = []
    for dep in serving.deployments:
        if dep.name in keep:
            continue
        entry = known.get(dep.name)
        if entry is None or (replaced is not None and dep.name == replaced.name):
            # Left traffic now, or unknown (a start-up that never served, a status lost in a
            # crash): drain from now either way, which never cuts a request short.
            entry = api.RetiredRevision(
                revision=dep.revision or "unknown", deployment=dep.name, since=stamp
            )
        retired.append(entry)
    retired.sort(key=lambda r: (r.since, r.deployment), reverse=True)

    slept: list[api.RetiredRevision] = []
    delete: list[tuple[str, str]] = []
    requeue: float | None = None
    kept: list[api.RetiredRevision] = []
    by_name = {d.name: d for d in serving.deployments}
    for entry in retired:
        dep = by_name[entry.deployment]
        left = settings.drain_seconds - (now - parse_time(entry.since)).total_seconds()
        if left > 0:
            requeue = left if requeue is None else min(requeue, left)
            kept.append(entry)
            continue
        if dep.legacy:
            delete.append(("Deployment", dep.name))  # its Service is the model's: kept
            continue
        if len([k for k in kept if not _is_legacy(serving, k.deployment)]) >= (
            settings.kept_revisions
        ):
            delete += [("Deployment", dep.name), ("Service", dep.name)]
            continue
        if dep.spec_replicas > 0:
            slept.append(entry)
        kept.append(entry)
    return kept, slept, delete, requeue
