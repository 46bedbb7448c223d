"""Level-based reconcile of one ModelDeployment: observe, plan, act, write status and events."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from modelship import api, metrics, monitoring, naming, planning, render, status
from modelship.kube import ApiError, KubeClient
from modelship.settings import OperatorSettings

_LOG = logging.getLogger(__name__)

LOG_TAIL_LINES = 20


def utcnow() -> str:
    """Now, as an RFC 3339 timestamp with second precision (as Kubernetes writes them)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._last: dict[str, api.ModelDeploymentStatus] = {}
        self._known: dict[str, tuple[str, str]] = {}
        self._serving: dict[str, ServingFacts] = {}

    async def reconcile(self, body: Any, trigger: str) -> api.ModelDeploymentStatus:
        """Bring one ModelDeployment's children and status to the level its spec asks for."""
        md = api.ModelDeployment.from_body(body)
        self._known[md.uid] = (md.namespace, md.name)
        async with self._locks[md.uid]:
            with metrics.RECONCILE_SECONDS.labels(trigger=trigger).time():
                try:
                    return await self._reconcile(md)
                except ApiError as exc:
                    metrics.RECONCILE_ERRORS.labels(reason=exc.reason).inc()
                    await self._report_error(md, exc)
                    raise
                except Exception as exc:
                    metrics.RECONCILE_ERRORS.labels(reason=type(exc).__name__).inc()
                    raise

    async def reconcile_owner(self, namespace: str, name: str, trigger: str) -> None:
        """Reconcile the ModelDeployment that owns a child which changed."""
        body = await self.client.get_model_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        await self.reconcile(body, trigger)

    def forget(self, uid: str) -> None:
        """Drop what is cached about a deleted ModelDeployment."""
        self._last.pop(uid, None)
        known = self._known.pop(uid, None)
        if known is not None:
            metrics.forget_model(*known)
        self._serving.pop(uid, None)
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
        seen = planning.ObservedDeployment.from_body(deployment)
        facts = ServingFacts(
            seen.generation, seen.revision, seen.replicas, seen.ready_replicas, seen.rolled_out
        )
        return self._serving.get(owner_uid) != facts

    def build_finished_unseen(self, owner_uid: str, job: dict[str, Any]) -> bool:
        """Whether a Job event reports an outcome its owner's status does not show yet."""
        seen = planning.ObservedJob.from_body(job)
        if seen.state == "Running":
            return False
        last = self._last.get(owner_uid)
        build = last.build if last is not None else None
        return build is None or build.revision != seen.revision or build.state != seen.state

    async def _observe(self, md: api.ModelDeployment) -> planning.Observed:
        jobs_raw, deployment_raw = await asyncio.gather(
            self.client.list_objects(
                "Job",
                md.namespace,
                {"app.kubernetes.io/instance": md.name, "app.kubernetes.io/component": "build"},
            ),
            self.client.get("Deployment", md.namespace, naming.deployment_name(md.name)),
        )
        jobs = tuple(
            planning.ObservedJob.from_body(j)
            for j in jobs_raw
            if _owned_by(j, md.uid) and not j["metadata"].get("deletionTimestamp")
        )
        deployment = None
        if deployment_raw is not None and _owned_by(deployment_raw, md.uid):
            deployment = planning.ObservedDeployment.from_body(deployment_raw)
        service = None
        current = next((j for j in jobs if j.revision == md.spec.revision()), None)
        if deployment is not None or (current is not None and current.state == "Succeeded"):
            service = await self.client.get("Service", md.namespace, naming.service_name(md.name))
        return planning.Observed(jobs=jobs, deployment=deployment, service=service)

    async def _reconcile(self, md: api.ModelDeployment) -> api.ModelDeploymentStatus:
        prior = self._last.get(md.uid, md.status)
        key_secret = await self._ensure_feedback_key(md, prior)
        observed = await self._observe(md)
        plan = planning.plan(md, observed, self.settings)

        deployment = observed.deployment
        for obj in plan.apply:
            result = await self.client.apply(obj)
            if obj["kind"] == "Deployment":
                deployment = planning.ObservedDeployment.from_body(result)
        if plan.build_created:
            metrics.BUILDS.labels(outcome="started").inc()
        if plan.scale_to is not None and deployment is not None:
            name = deployment.body["metadata"]["name"]
            await self.client.scale_deployment(md.namespace, name, plan.scale_to)
        for job_name in plan.delete_jobs:
            await self.client.delete_job(md.namespace, job_name)

        watched = await self._apply_monitoring(md, prior)
        facts = await self._facts(md, prior, observed, plan, deployment, watched=watched)
        facts = dataclasses.replace(facts, feedback_key_secret=key_secret)
        new = status.derive_status(md.spec, md.generation, prior, facts, utcnow())
        if new != prior:
            await self._write_status(md, new)
        for event in status.transition_events(prior, new):
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
        self._serving[md.uid] = (
            ServingFacts(
                deployment.generation,
                deployment.revision,
                deployment.replicas,
                deployment.ready_replicas,
                deployment.rolled_out,
            )
            if deployment is not None
            else ServingFacts(0, None, 0, 0, False)
        )
        metrics.publish_phases(s.phase or "Unknown" for s in self._last.values())
        return new

    async def _ensure_feedback_key(
        self, md: api.ModelDeployment, prior: api.ModelDeploymentStatus
    ) -> str:
        """Create the model's token-signing key once; status remembers it was done, so a
        restarted operator makes no request for it."""
        name = naming.feedback_key_name(md.name)
        if prior.feedback_key_secret != name:
            secret = render.render_feedback_key_secret(md, secrets.token_bytes(32))
            await self.client.create_secret(secret)  # False: made by an earlier reconcile
        return name

    async def _apply_monitoring(
        self, md: api.ModelDeployment, prior: api.ModelDeploymentStatus
    ) -> monitoring.Outcome:
        """Apply the wanted monitoring children, remove the unwanted ones.

        A cluster without prometheus-operator's CRDs, or an operator without the RBAC for them,
        is reported in the Monitoring condition; it never fails the reconcile of a model that
        serves fine without monitoring.
        """
        present: dict[monitoring.Kind, str] = {}
        not_served: list[monitoring.Kind] = []
        errors: list[str] = []
        for child in monitoring.desired(md, self.settings.runbook_url):
            try:
                if child.body is None:
                    if monitoring.recorded(prior, child.kind) == child.name:
                        await self.client.delete_optional(child.kind, md.namespace, child.name)
                    continue
                found = await self.client.get(child.kind, md.namespace, child.name)
                if found is not None and not _owned_by(found, md.uid):
                    errors.append(
                        f"{child.kind} {child.name} exists and is not owned by md/{md.name}"
                    )
                    continue
                if found is None or not planning.contains(found, child.body):
                    await self.client.apply(child.body)
                present[child.kind] = child.name
            except ApiError as exc:
                if exc.kind_missing:
                    if child.body is not None:
                        not_served.append(child.kind)
                else:
                    errors.append(f"{child.kind} {child.name}: {exc}")
        return monitoring.Outcome(present, tuple(not_served), tuple(errors))

    async def _report_error(self, md: api.ModelDeployment, exc: Exception) -> None:
        """Show a reconcile that keeps failing in status (Degraded), so it is never silent."""
        prior = self._last.get(md.uid, md.status)
        now = utcnow()
        message = f"reconcile failed (retried with backoff): {exc}"[:2000]
        degraded = api.Condition(
            type="Degraded",
            status="True",
            reason="ReconcileError",
            message=message,
            last_transition_time=now,
            observed_generation=md.generation,
        )
        old = next((c for c in prior.conditions if c.type == "Degraded"), None)
        if old is not None and old.status == "True":
            degraded = degraded.model_copy(
                update={"last_transition_time": old.last_transition_time}
            )
        if old == degraded:
            return
        conditions = [c for c in prior.conditions if c.type != "Degraded"] + [degraded]
        new = prior.model_copy(update={"conditions": conditions, "phase": prior.phase or "Failed"})
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

    async def _facts(
        self,
        md: api.ModelDeployment,
        prior: api.ModelDeploymentStatus,
        observed: planning.Observed,
        plan: planning.Plan,
        deployment: planning.ObservedDeployment | None,
        *,
        watched: monitoring.Outcome,
    ) -> status.Facts:
        revision = plan.revision
        job = observed.job(revision)
        job_name = naming.build_job_name(md.name, revision)
        state: planning.BuildState = job.state if job is not None else "Running"
        summary: planning.BuildSummary | None = None
        log_tail: str | None = None
        message = job.message if job is not None else ""
        known = prior.build
        if state != "Running":
            if known is not None and known.revision == revision and known.state == state:
                summary = _summary_from_status(known)
                log_tail = known.log_tail
            else:
                metrics.BUILDS.labels(outcome=state.lower()).inc()
                summary, log_tail = await self._read_build_outcome(md, job_name, state)
        rolled_out = deployment is not None and deployment.rolled_out and plan.scale_to is None
        return status.Facts(
            revision=revision,
            job_name=job_name,
            artifact=naming.artifact_uri(
                self.settings.artifact_store, md.namespace, md.name, revision
            ),
            build_state=state,
            summary=summary,
            build_message=message,
            log_tail=log_tail,
            serving_revision=plan.serving_revision,
            rolled_out=rolled_out,
            replicas=deployment.replicas if deployment is not None else 0,
            ready_replicas=deployment.ready_replicas if deployment is not None else 0,
            selector=naming.selector_string(naming.server_selector(md.name)),
            url=naming.model_url(md.name, md.namespace),
            monitoring=watched,
        )

    async def _read_build_outcome(
        self, md: api.ModelDeployment, job_name: str, state: planning.BuildState
    ) -> tuple[planning.BuildSummary | None, str | None]:
        pods = await self.client.list_objects(
            "Pod", md.namespace, {"batch.kubernetes.io/job-name": job_name}
        )
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        summary: planning.BuildSummary | None = None
        termination: str | None = None
        chosen: str | None = None
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                terminated = (cs.get("state") or {}).get("terminated") or {}
                if cs.get("name") == "build" and terminated:
                    termination = terminated.get("message")
                    summary = planning.parse_summary(termination)
                    chosen = pod["metadata"]["name"]
                    break
            if chosen is not None:
                break
        log_tail: str | None = None
        if state == "Failed":
            if chosen is not None:
                log_tail = await self.client.read_log_tail(
                    md.namespace, chosen, "build", LOG_TAIL_LINES
                )
            elif termination:
                log_tail = termination
            if log_tail is not None:
                log_tail = log_tail[-4000:]
        return summary, log_tail


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


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _summary_from_status(build: api.BuildStatus) -> planning.BuildSummary:
    return planning.BuildSummary(
        ok=build.state == "Succeeded",
        selected=build.selected,
        source_sha256=build.source_sha256,
        variants=tuple(build.variants),
        error=build.error,
    )
