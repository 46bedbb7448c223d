"""Level-based reconcile of one ModelDeployment: observe, plan, act, write status and events."""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from modelship import (
    api,
    builds,
    durations,
    metrics,
    monitoring,
    naming,
    planning,
    revisions,
    rollout,
    status,
    traffic,
)
from modelship import pods as podstate
from modelship.analysis.checks import IntervalVerdict, judge_interval, run_checks
from modelship.analysis.queries import Scope, plan_queries
from modelship.kube import ApiError, KubeClient
from modelship.prometheus import PrometheusClient
from modelship.scaling import report
from modelship.settings import OperatorSettings
from modelship.timestamps import format_time

_LOG = logging.getLogger(__name__)

LOG_TAIL_LINES = 20


def utcnow() -> str:
    """Now, as an RFC 3339 timestamp with second precision (as Kubernetes writes them)."""
    return format_time(datetime.datetime.now(datetime.UTC))


@dataclass(frozen=True)
class ServingFacts:
    """What a child event needs to know to decide whether the owner must be reconciled."""

    generation: int
    revision: str | None
    replicas: int
    ready_replicas: int
    rolled_out: bool


class Reconciler:
    """Owns the client, per-object locks and the last status written per ModelDeployment."""

    def __init__(self, settings: OperatorSettings, client: KubeClient) -> None:
        self.settings = settings
        self.client = client
        self.prometheus = PrometheusClient(
            settings.prometheus_url, settings.prometheus_timeout_seconds
        )
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._last: dict[str, api.ModelDeploymentStatus] = {}
        self._known: dict[str, tuple[str, str]] = {}
        self._serving: dict[str, dict[str, ServingFacts]] = {}
        # Only models with scaling.targets: what the autoscaler reads between reconciles.
        self._scaling: dict[str, report.ScalingView] = {}
        # One timer per object only while a drain is in flight; none for a model at rest.
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._woken: set[asyncio.Task[None]] = set()

    async def reconcile(
        self, body: Any, trigger: str, autoscaling: api.AutoscalingStatus | None = None
    ) -> api.ModelDeploymentStatus:
        """Bring one ModelDeployment's children and status to the level its spec asks for
        (and, from the autoscaler, to the count of its new evaluation)."""
        md = api.ModelDeployment.from_body(body)
        self._known[md.uid] = (md.namespace, md.name)
        async with self._locks[md.uid]:
            with metrics.RECONCILE_SECONDS.labels(trigger=trigger).time():
                try:
                    return await self._reconcile(md, autoscaling)
                except ApiError as exc:
                    metrics.RECONCILE_ERRORS.labels(reason=exc.reason).inc()
                    await self._report_error(md, exc)
                    raise
                except Exception as exc:
                    metrics.RECONCILE_ERRORS.labels(reason=type(exc).__name__).inc()
                    raise

    async def reconcile_owner(
        self,
        namespace: str,
        name: str,
        trigger: str,
        autoscaling: api.AutoscalingStatus | None = None,
    ) -> None:
        """Reconcile the ModelDeployment that owns a child which changed (or that the
        autoscaler evaluated)."""
        body = await self.client.get_model_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        await self.reconcile(body, trigger, autoscaling)

    def scaling_views(self) -> dict[str, report.ScalingView]:
        """The models the autoscaler evaluates, as their last reconcile saw them."""
        return dict(self._scaling)

    def forget(self, uid: str) -> None:
        """Drop what is cached about a deleted ModelDeployment."""
        self._last.pop(uid, None)
        known = self._known.pop(uid, None)
        if known is not None:
            metrics.forget_model(*known)
        self._serving.pop(uid, None)
        self._scaling.pop(uid, None)
        timer = self._timers.pop(uid, None)
        if timer is not None:
            timer.cancel()
        self._locks.pop(uid, None)
        metrics.publish_phases(s.phase or "Unknown" for s in self._last.values())

    async def resync_forever(self) -> None:
        """Re-reconcile every known ModelDeployment periodically: repairs drift no event showed.

        One task for the whole operator (rather than a kopf timer per object) keeps memory flat
        in the number of CRs; the objects are those kopf's watch delivered.
        """
        # Start-up counts as a completed pass: "stuck" is measured from when the operator began.
        metrics.RESYNC_COMPLETED.set_to_current_time()
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for uid, (namespace, name) in list(self._known.items()):
                if uid not in self._known:
                    continue
                try:
                    await self.reconcile_owner(namespace, name, "resync")
                except Exception as exc:  # one bad object must not stop the others' resync
                    _LOG.warning(f"resync of {namespace}/{name} failed: {exc}")
            metrics.RESYNC_COMPLETED.set_to_current_time()

    def serving_changed(self, owner_uid: str, deployment: dict[str, Any]) -> bool:
        """Whether a Deployment event carries news for its owner's status."""
        seen = revisions.ObservedDeployment.from_body(deployment)
        return self._serving.get(owner_uid, {}).get(seen.name) != _serving_facts(seen)

    def _wake_later(self, md: api.ModelDeployment, delay: float | None) -> None:
        """Reconcile the object again after `delay` seconds (a drain ending), once."""
        old = self._timers.pop(md.uid, None)
        if old is not None:
            old.cancel()
        if delay is None:
            return

        def wake() -> None:
            self._timers.pop(md.uid, None)
            task = asyncio.create_task(self._wake(md.namespace, md.name))
            self._woken.add(task)
            task.add_done_callback(self._woken.discard)

        # A second of slack: the drain is measured in whole seconds of status timestamps.
        self._timers[md.uid] = asyncio.get_running_loop().call_later(delay + 1.0, wake)

    async def _wake(self, namespace: str, name: str) -> None:
        try:
            await self.reconcile_owner(namespace, name, "timer")
        except Exception as exc:  # the resync retries; a timer has nobody to report to
            _LOG.warning(f"timed reconcile of {namespace}/{name} failed: {exc}")

    def build_finished_unseen(self, owner_uid: str, job: dict[str, Any]) -> bool:
        """Whether a Job event reports an outcome its owner's status does not show yet."""
        seen = builds.ObservedJob.from_body(job)
        if seen.state == "Running":
            return False
        last = self._last.get(owner_uid)
        build = last.build if last is not None else None
        return build is None or build.revision != seen.revision or build.state != seen.state

    async def _observe(self, md: api.ModelDeployment) -> planning.Observed:
        server = naming.server_selector(md.name)
        build = {"app.kubernetes.io/instance": md.name, "app.kubernetes.io/component": "build"}
        wanted = planning.wanted_monitoring(md, self.settings.runbook_url)
        jobs_raw, deployments_raw, services_raw, pods_raw, *children = await asyncio.gather(
            self.client.list_objects("Job", md.namespace, build),
            self.client.list_objects("Deployment", md.namespace, server),
            self.client.list_objects("Service", md.namespace, server),
            self.client.list_objects("Pod", md.namespace, server),
            *(self._observe_child(md, c.kind, c.name) for c in wanted),
        )

        def ours(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                o
                for o in objects
                if naming.owned_by(o, md.uid) and not o["metadata"].get("deletionTimestamp")
            ]

        services = ours(services_raw)
        entry = naming.service_name(md.name)
        gateway = await self._observe_gateway(md) if traffic.observed_needed(md) else None
        return planning.Observed(
            jobs=tuple(builds.ObservedJob.from_body(j) for j in ours(jobs_raw)),
            serving=revisions.Serving(
                deployments=tuple(
                    revisions.ObservedDeployment.from_body(d) for d in ours(deployments_raw)
                ),
                service=next((s for s in services if s["metadata"]["name"] == entry), None),
                revision_services=tuple(s for s in services if s["metadata"]["name"] != entry),
            ),
            monitoring=tuple(children),
            pods=tuple(pods_raw),
            gateway=gateway,
        )

    async def _observe_gateway(self, md: api.ModelDeployment) -> traffic.Observed:
        """The model's routes (ours; another owner's are named, never touched) and the
        Gateways they attach to."""
        name = naming.route_name(md.name)
        try:
            bodies = await asyncio.gather(
                *(self.client.get(kind, md.namespace, name) for kind in traffic.ROUTE_KINDS)
            )
            found = await asyncio.gather(
                *(self.client.get("Gateway", ns, gw) for ns, gw in traffic.gateways(md))
            )
        except ApiError as exc:
            if exc.kind_missing:
                return traffic.Observed(served=False)
            raise
        routes: dict[traffic.RouteKind, traffic.ObservedRoute | None] = {}
        foreign: list[str] = []
        for kind, body in zip(traffic.ROUTE_KINDS, bodies, strict=True):
            ours = body is not None and naming.owned_by(body, md.uid)
            if body is not None and not ours:
                foreign.append(f"{kind} {md.namespace}/{name}")
            routes[kind] = traffic.ObservedRoute.from_body(body) if body and ours else None
        return traffic.Observed(
            routes=routes,
            gateways=dict(zip(traffic.gateways(md), found, strict=True)),
            foreign=tuple(foreign),
        )

    async def _observe_child(
        self, md: api.ModelDeployment, kind: monitoring.Kind, name: str
    ) -> planning.ObservedChild:
        try:
            found = await self.client.get(kind, md.namespace, name)
        except ApiError as exc:
            if exc.kind_missing:
                return planning.ObservedChild(kind, name, served=False)
            raise
        return planning.ObservedChild(kind, name, found)

    async def _reconcile(
        self, md: api.ModelDeployment, autoscaling: api.AutoscalingStatus | None
    ) -> api.ModelDeploymentStatus:
        before = self._last.get(md.uid, md.status)
        prior = before
        if autoscaling is not None and md.spec.autoscaled:
            prior = before.model_copy(update={"autoscaling": autoscaling})
        md = report.served(md, prior.autoscaling)
        observed = await self._observe(md)
        now = datetime.datetime.now(datetime.UTC)
        measured = None
        if rollout.analysis_due(md.spec, prior.canary, now):
            measured = await self._measure(md, prior)
        # Read before planning: a new revision's Deployment is made with the digest its build
        # recorded, never patched with it a reconcile later.
        build = await self._build_outcome(md, prior, observed)
        plan = planning.plan(
            md,
            observed,
            self.settings,
            prior,
            now,
            new_key=secrets.token_bytes(32),
            measured=measured,
            build=build.summary,
        )

        for secret in plan.create:
            await self.client.create_secret(secret)  # False: made by an earlier reconcile
        conflicts: list[str] = []
        for obj in plan.apply:
            await self._place(md, obj, observed, conflicts)
        if plan.build_created and not conflicts:
            metrics.BUILDS.labels(outcome="started").inc()
        deployments = await self._act_on_revisions(md, observed, plan.revisions, conflicts)
        for job_name in plan.delete_jobs:
            await self.client.delete_job(md.namespace, job_name)
        self._wake_later(md, plan.revisions.requeue_after)
        watched = await self._act_on_monitoring(md, plan.monitoring)

        facts = self._facts(
            md, observed, plan, deployments, build, watched=watched, conflicts=conflicts
        )
        new = status.derive_status(md.spec, md.generation, prior, facts, utcnow())
        if new != before:  # not `prior`: that one already holds the autoscaler's news
            await self._write_status(md, new)
        events = status.transition_events(before, new) + status.retirement_events(
            plan.revisions.slept, plan.revisions.delete, self.settings.drain_seconds
        )
        if plan.action_error is not None:
            events.append(status.EventSpec("Warning", "InvalidRolloutAction", plan.action_error))
        if plan.clear_action:
            # After the status holds the decision: acting again after a crash is a no-op.
            await self.client.remove_annotation(md.namespace, md.name, rollout.ACTION_ANNOTATION)
        for event in events:
            await self.client.post_event(
                md, type_=event.type, reason=event.reason, message=event.message, now=utcnow()
            )
        self._last[md.uid] = new
        metrics.publish_model(
            md.namespace,
            md.name,
            new.phase or "Unknown",
            md.spec.desired_replicas(),
            new.ready_replicas or 0,
        )
        if new.last_decision is not None and new.last_decision != prior.last_decision:
            metrics.DECISIONS.labels(
                namespace=md.namespace, name=md.name, action=new.last_decision.action
            ).inc()
        self._serving[md.uid] = {name: _serving_facts(d) for name, d in deployments.items()}
        self._remember_scaling(md, new, plan.revisions, deployments)
        metrics.publish_phases(s.phase or "Unknown" for s in self._last.values())
        return new

    def _remember_scaling(
        self,
        md: api.ModelDeployment,
        new: api.ModelDeploymentStatus,
        plan: revisions.RevisionPlan,
        deployments: dict[str, revisions.ObservedDeployment],
    ) -> None:
        """Keep what the autoscaler reads of a model with scaling.targets: the revisions in
        traffic and their pods, as this reconcile left them."""
        if not md.spec.autoscaled:
            self._scaling.pop(md.uid, None)
            return
        names = [plan.stable_deployment]
        if plan.canary is not None:
            names.append(naming.revision_name(md.name, plan.canary.revision))
        live = [deployments[n] for n in dict.fromkeys(names) if n is not None and n in deployments]
        ready = sum(d.ready_replicas for d in live)
        self._scaling[md.uid] = report.ScalingView(
            md=md,
            revisions=tuple(d.revision for d in live if d.revision),
            current=md.spec.desired_replicas(),
            ready=ready,
            not_ready=max(sum(d.replicas for d in live) - ready, 0),
            autoscaling=new.autoscaling,
        )

    async def _measure(
        self, md: api.ModelDeployment, prior: api.ModelDeploymentStatus
    ) -> IntervalVerdict:
        """The verdict of the canary's interval that just ended: canary and stable over the
        same window, read from Prometheus; the statistics run off the event loop."""
        analysis, canary = md.spec.rollout.analysis, prior.canary
        stable = prior.revisions.stable if prior.revisions else None
        assert analysis is not None and canary is not None
        window = durations.prometheus_duration(durations.duration_ms(md.spec.rollout.interval))
        labels_window = durations.prometheus_duration(
            durations.duration_ms(analysis.accuracy_window or md.spec.rollout.interval)
        )
        scope = Scope(
            namespace=md.namespace,
            name=md.name,
            canary=canary.revision,
            stable=stable.revision if stable is not None else canary.revision,
            window=window,
            feedback_window=labels_window,
        )
        canary_readings, stable_readings, custom = await self.prometheus.interval(
            plan_queries(scope, analysis.metrics), at=time.time()
        )
        policy = rollout.analysis_policy(analysis)
        results = await asyncio.get_running_loop().run_in_executor(
            None, run_checks, policy, canary_readings, stable_readings, custom
        )
        verdict = judge_interval(results)
        for result in results:
            metrics.ANALYSIS.labels(check=result.name, verdict=result.verdict).inc()
        return verdict

    async def _place(
        self,
        md: api.ModelDeployment,
        obj: dict[str, Any],
        observed: planning.Observed,
        conflicts: list[str],
    ) -> dict[str, Any] | None:
        """Apply a child the model owns, or one whose name is free. A name held by an object the
        model does not own is neither adopted nor overwritten: it is added to `conflicts` (None
        is returned, as for a child of ours still being deleted)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        if (kind, name) in observed.owned:
            return await self.client.apply(obj)
        # Looked up first, then made by server-side apply like every child (a POST would leave a
        # second, Update-operation owner of every field in managedFields).
        found = await self.client.get(kind, md.namespace, name)
        if found is None:
            return await self.client.apply(obj)
        if not naming.owned_by(found, md.uid):
            conflicts.append(f"{kind} {md.namespace}/{name}")
        return None  # another owner's, or ours and terminating: a later reconcile makes it

    async def _act_on_revisions(
        self,
        md: api.ModelDeployment,
        observed: planning.Observed,
        plan: revisions.RevisionPlan,
        conflicts: list[str],
    ) -> dict[str, revisions.ObservedDeployment]:
        """Carry out the revision plan; returns every serving Deployment as it is now."""
        deployments = {d.name: d for d in observed.serving.deployments}
        # The routes first: a revision leaves them before any of its pods is scaled down.
        for obj in plan.routes:
            await self.client.apply(obj)
        for kind, name in plan.drop_routes:
            await self.client.delete_optional(kind, md.namespace, name)
        for obj in plan.apply:
            result = await self._place(md, obj, observed, conflicts)
            if result is not None and obj["kind"] == "Deployment":
                seen = revisions.ObservedDeployment.from_body(result)
                deployments[seen.name] = seen
        for name, replicas in plan.scale:
            await self.client.scale_deployment(md.namespace, name, replicas)
        for kind, name in plan.delete:
            await self.client.delete_optional(kind, md.namespace, name)
            if kind == "Deployment":
                deployments.pop(name, None)
        return deployments

    async def _act_on_monitoring(
        self, md: api.ModelDeployment, plan: planning.MonitoringPlan
    ) -> monitoring.Outcome:
        """Carry out the monitoring plan. A cluster without prometheus-operator's CRDs, or an
        operator without the RBAC for them, is reported in the Monitoring condition; it never
        fails the reconcile of a model that serves fine without monitoring."""
        present = dict(plan.expected.present)
        not_served = list(plan.expected.kinds_not_served)
        errors = list(plan.expected.errors)
        for body in plan.apply:
            kind, name = body["kind"], body["metadata"]["name"]
            try:
                await self.client.apply(body)
            except ApiError as exc:
                present.pop(kind, None)
                if exc.kind_missing:
                    not_served.append(kind)
                else:
                    errors.append(f"{kind} {name}: {exc}")
        for kind, name in plan.delete:
            try:
                await self.client.delete_optional(kind, md.namespace, name)
            except ApiError as exc:
                errors.append(f"{kind} {name}: {exc}")
        return monitoring.Outcome(present, tuple(not_served), tuple(errors))

    async def _report_error(self, md: api.ModelDeployment, exc: Exception) -> None:
        """Show a reconcile that keeps failing in status (Degraded), so it is never silent."""
        prior = self._last.get(md.uid, md.status)
        new = status.reconcile_error(prior, md.generation, str(exc), utcnow())
        if new == prior:
            return
        try:
            await self._write_status(md, new)
            self._last[md.uid] = new
        except ApiError as write_error:
            _LOG.warning(f"could not report the error of {md.namespace}/{md.name}: {write_error}")

    async def _write_status(self, md: api.ModelDeployment, new: api.ModelDeploymentStatus) -> None:
        payload = _merge_patch(
            md.status.model_dump(mode="json", by_alias=True, exclude_none=True),
            new.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        await self.client.patch_status(md.namespace, md.name, payload)

    def _facts(
        self,
        md: api.ModelDeployment,
        observed: planning.Observed,
        plan: planning.Plan,
        deployments: dict[str, revisions.ObservedDeployment],
        build: builds.BuildOutcome,
        *,
        watched: monitoring.Outcome,
        conflicts: list[str],
    ) -> status.Facts:
        revision = plan.revision
        current = deployments.get(naming.revision_name(md.name, revision))
        chosen = plan.revisions.stable_deployment
        stable = deployments.get(chosen) if chosen is not None else None
        shown = stable if stable is not None else current
        return status.Facts(
            revision=revision,
            job_name=naming.build_job_name(md.name, revision),
            artifact=naming.artifact_uri(
                self.settings.artifact_store, md.namespace, md.name, revision
            ),
            build_state=build.state,
            summary=build.summary,
            build_message=build.message,
            log_tail=build.log_tail,
            serving_revision=plan.revisions.stable,
            rolled_out=stable is not None and stable is current and stable.rolled_out,
            replicas=shown.replicas if shown is not None else 0,
            ready_replicas=shown.ready_replicas if shown is not None else 0,
            selector=naming.selector_string(naming.server_selector(md.name)),
            url=naming.model_url(md.name, md.namespace),
            monitoring=monitoring.condition(watched),
            monitoring_status=watched.status(),
            feedback_key_secret=naming.feedback_key_name(md.name),
            starting=None
            if current is None or current is stable
            else status.Starting(current.ready_replicas, md.spec.desired_replicas()),
            replaced=plan.revisions.replaced,
            retired=plan.revisions.retired,
            canary=plan.revisions.canary,
            decision=plan.revisions.decision,
            traffic=plan.revisions.traffic,
            gateway_url=_gateway_url(md, observed.gateway),
            starting_clock=plan.revisions.starting,
            failed=plan.revisions.failed,
            conflicts=tuple(conflicts),
            refused=plan.refused,
            pods_said=podstate.describe(
                podstate.selected(observed.pods, naming.RevisionIdentity.of(md, revision).selector)
            ),
        )

    async def _build_outcome(
        self,
        md: api.ModelDeployment,
        prior: api.ModelDeploymentStatus,
        observed: planning.Observed,
    ) -> builds.BuildOutcome:
        """The current revision's build: its state, and once finished its summary (read from
        its pod once, then from status)."""
        revision = md.spec.revision()
        job = observed.job(revision)
        state: builds.BuildState = job.state if job is not None else "Running"
        if job is None and observed.serving.built(revision):
            state = "Succeeded"  # built before and kept; its Job may have been cleaned up
        message = job.message if job is not None else ""
        known = prior.build
        if state == "Running":
            return builds.BuildOutcome(state, message=message)
        if known is not None and known.revision == revision and known.state == state:
            return builds.BuildOutcome(state, _summary_from_status(known), known.log_tail, message)
        if job is None:
            return builds.BuildOutcome(state, message=message)
        metrics.BUILDS.labels(outcome=state.lower()).inc()
        read, log_tail = await self._read_build_outcome(md, job.name, state)
        return builds.BuildOutcome(state, read, log_tail, message)

    async def _read_build_outcome(
        self, md: api.ModelDeployment, job_name: str, state: builds.BuildState
    ) -> tuple[builds.BuildSummary | None, str | None]:
        pods = await self.client.list_objects(
            "Pod", md.namespace, {"batch.kubernetes.io/job-name": job_name}
        )
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        summary: builds.BuildSummary | None = None
        termination: str | None = None
        chosen: str | None = None
        failed_step = "build"
        for pod in pods:
            read = builds.read_pod(pod)
            if read is not None:
                summary, termination, failed_step = read
                chosen = pod["metadata"]["name"]
                break
        log_tail: str | None = None
        if state == "Failed":
            if chosen is not None:
                log_tail = await self.client.read_log_tail(
                    md.namespace, chosen, failed_step, LOG_TAIL_LINES
                )
            elif termination:
                log_tail = termination
            if log_tail is not None:
                log_tail = log_tail[-4000:]
        return summary, log_tail


def _gateway_url(md: api.ModelDeployment, observed: traffic.Observed | None) -> str | None:
    gateways = traffic.gateways(md)
    if observed is None or not gateways or not rollout.gateway_routed(md.spec):
        return None
    return traffic.gateway_url(md, observed.gateways.get(gateways[0]))


def _serving_facts(seen: revisions.ObservedDeployment) -> ServingFacts:
    return ServingFacts(
        seen.generation, seen.revision, seen.replicas, seen.ready_replicas, seen.rolled_out
    )


def _merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch from old to new: a merge patch keeps absent keys, so what the new
    status no longer has (at any depth of nested objects) is nulled out."""
    patch: dict[str, Any] = dict(new)
    for key, was in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(was, dict) and isinstance(new[key], dict):
            patch[key] = _merge_patch(was, new[key])
    return patch


def _summary_from_status(build: api.BuildStatus) -> builds.BuildSummary:
    return builds.BuildSummary(
        ok=build.state == "Succeeded",
        selected=build.selected,
        source_sha256=build.source_sha256,
        variants=tuple(build.variants),
        error=build.error,
    )
