"""kopf handlers: thin routes from Kubernetes events to the reconciler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from modelship import api, kube, metrics, naming
from modelship.autoscaler import Autoscaler
from modelship.kube import KubeClient
from modelship.reconcile import Reconciler
from modelship.settings import OperatorSettings

_LOG = logging.getLogger(__name__)
_MANAGED = {"app.kubernetes.io/managed-by": naming.MANAGED_BY}
_metrics: dict[str, int] = {}


def _retry_delay(retry: int, cap: float) -> float:
    # Exponential backoff for problems found while reconciling: 2s, 4s, 8s, ... capped.
    return float(min(cap, 2.0 ** min(retry + 1, 16)))


@kopf.on.startup(id="configure")
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Set kopf's bookkeeping aside (annotations only) and build the reconciler."""
    ours = OperatorSettings.from_env()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    # Events are written by the reconciler, one per transition; kopf's own would be noise.
    settings.posting.enabled = False
    # Resources are known statically; watching CRDs would only need more RBAC.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # Bounded concurrency: a burst of N new CRs queues instead of holding N live workers (and
    # their bodies) in memory at once; throughput is bound by the apiserver anyway.
    settings.queueing.worker_limit = ours.max_workers
    # A finished worker frees its slot soon (kopf's 5 s default would throttle bursts).
    settings.queueing.idle_timeout = 0.5
    # One /metrics server per process, however often an in-process runner restarts kopf.
    if "port" not in _metrics and ours.metrics_port:
        _metrics["port"] = metrics.serve(ours.metrics_port)
    reconciler = Reconciler(ours, KubeClient(on_request=metrics.count_request))
    memo["reconciler"] = reconciler
    memo["resync"] = asyncio.create_task(reconciler.resync_forever(), name="resync")
    autoscaler = Autoscaler(
        reconciler, reconciler.prometheus, ours.prometheus_scrape_interval_seconds
    )
    memo["autoscaler"] = asyncio.create_task(autoscaler.run_forever(), name="autoscaler")


@kopf.on.login(id="login")
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf and the reconciler share one way to find credentials (read at call time)."""
    return kube.login()


@kopf.on.cleanup(id="close")
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client."""
    reconciler: Reconciler = memo["reconciler"]
    memo["resync"].cancel()
    memo["autoscaler"].cancel()
    await reconciler.client.close()
    await reconciler.prometheus.close()


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL, id="reconcile-resume")
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL, id="reconcile-create")
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, id="reconcile-update")
async def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int, reason: str, **_: Any) -> None:
    """Reconcile on every change of spec (and once per object when the operator starts)."""
    await _reconcile(memo, body, reason or "resume", retry)


@kopf.on.delete(api.GROUP, api.VERSION, api.PLURAL, id="forget", optional=True)
async def forget(uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Drop cached state; the children go with their ownerReferences (garbage collector)."""
    reconciler: Reconciler = memo["reconciler"]
    reconciler.forget(uid)


@kopf.on.event("batch", "v1", "jobs", labels=_MANAGED, id="build-job-event")
async def build_job_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A build finished or a Job vanished: the owner's status or children must follow."""
    reconciler: Reconciler = memo["reconciler"]
    owner = _owner(body)
    if owner is None or type not in ("MODIFIED", "DELETED"):
        return
    if type == "DELETED" or reconciler.build_finished_unseen(owner[1], dict(body)):
        await _reconcile_owner(reconciler, body, owner[0], "job")


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED, id="deployment-event")
async def deployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Serving pods changed (rollout, readiness, drift): refresh the owner."""
    reconciler: Reconciler = memo["reconciler"]
    owner = _owner(body)
    if owner is None or type not in ("MODIFIED", "DELETED"):
        return
    if type == "DELETED" or reconciler.serving_changed(owner[1], dict(body)):
        await _reconcile_owner(reconciler, body, owner[0], "deployment")


@kopf.on.event("", "v1", "services", labels=_MANAGED, id="service-event")
async def service_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Service vanished: recreate it."""
    reconciler: Reconciler = memo["reconciler"]
    owner = _owner(body)
    if owner is not None and type == "DELETED":
        await _reconcile_owner(reconciler, body, owner[0], "service")


def _owner(body: kopf.Body) -> tuple[str, str] | None:
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/"):
            return str(ref["name"]), str(ref["uid"])
    return None


async def _reconcile(memo: kopf.Memo, body: kopf.Body, trigger: str, retry: int) -> None:
    reconciler: Reconciler = memo["reconciler"]
    try:
        await reconciler.reconcile(body, trigger)
    except ValidationError as exc:
        # The CRD schema should have refused this; retrying cannot fix a spec.
        raise kopf.PermanentError(f"spec does not match the API: {exc}") from exc
    except Exception as exc:
        delay = _retry_delay(retry, reconciler.settings.max_retry_delay_seconds)
        raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=delay) from exc


async def _reconcile_owner(
    reconciler: Reconciler, body: kopf.Body, owner: str, trigger: str
) -> None:
    # Event handlers are not retried by kopf; the periodic resync is the safety net.
    namespace = body.metadata.namespace
    if namespace is None:
        return
    try:
        await reconciler.reconcile_owner(namespace, owner, trigger)
    except Exception as exc:
        _LOG.warning(f"reconcile of {namespace}/{owner} after a {trigger} event failed: {exc}")
