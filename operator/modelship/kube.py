"""Every Kubernetes API call the operator makes (async, over kopf's credentials)."""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import kopf

from modelship import api

FIELD_MANAGER = "modelship-operator"

# kind -> (API path prefix, plural); the only kinds the operator reads or writes.
_RESOURCES: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "PodMonitor": ("/apis/monitoring.coreos.com/v1", "podmonitors"),
    "PrometheusRule": ("/apis/monitoring.coreos.com/v1", "prometheusrules"),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
    "GRPCRoute": ("/apis/gateway.networking.k8s.io/v1", "grpcroutes"),
    "Gateway": ("/apis/gateway.networking.k8s.io/v1", "gateways"),
    api.KIND: (f"/apis/{api.GROUP}/{api.VERSION}", api.PLURAL),
}

# (API group, resource) -> verbs, filled by @_uses; manifests/ RBAC is tested against it.
PERMISSIONS: dict[tuple[str, str], set[str]] = collections.defaultdict(set)

# What kopf itself needs for the handlers in modelship.handlers (watch streams and its
# bookkeeping annotations on the custom resource).
KOPF_PERMISSIONS: dict[tuple[str, str], set[str]] = {
    (api.GROUP, api.PLURAL): {"list", "watch", "patch"},
    ("batch", "jobs"): {"list", "watch"},
    ("apps", "deployments"): {"list", "watch"},
    ("", "services"): {"list", "watch"},
}

F = TypeVar("F", bound=Callable[..., Any])


def _uses(group: str, resource: str, *verbs: str) -> Callable[[F], F]:
    def register(func: F) -> F:
        PERMISSIONS[(group, resource)].update(verbs)
        return func

    return register


class ApiError(Exception):
    """A failed API request, carrying the HTTP status and the apiserver's message."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path} failed with HTTP {status}: {message}")
        self.status = status
        self.reason = _REASONS.get(status, "ApiError")
        # The apiserver answers a path of a group it does not serve (no CRD of that group
        # installed) with a plain-text "404 page not found", an unserved resource of a served
        # group with "the server could not find the requested resource"; a missing object of a
        # served type says "<kind> \"name\" not found".
        self.kind_missing = status == 404 and (
            "page not found" in message or "could not find the requested resource" in message
        )


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def _object_path(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = _RESOURCES[kind]
    path = f"{prefix}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


@dataclass
class RequestCounter:
    """Counts requests by (method, resource) for metrics and benchmarks."""

    counts: collections.Counter[tuple[str, str]]

    def total(self) -> int:
        """All requests so far."""
        return sum(self.counts.values())

    def writes(self) -> int:
        """Requests that change state (anything but GET)."""
        return sum(n for (method, _), n in self.counts.items() if method != "GET")


class KubeClient:
    """A small async Kubernetes REST client limited to what the operator does."""

    def __init__(self, on_request: Callable[[str, str], None] | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._lock = asyncio.Lock()
        self._on_request = on_request
        self.counter = RequestCounter(collections.Counter())

    async def _ensure(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        async with self._lock:
            if self._session is None:
                info = login()
                ctx: ssl.SSLContext | bool = info.as_ssl_context()
                if info.insecure:
                    ctx = False
                self._server = info.server.rstrip("/")
                self._session = aiohttp.ClientSession(
                    headers=info.as_http_headers(),
                    connector=aiohttp.TCPConnector(ssl=ctx, limit=64),
                    timeout=aiohttp.ClientTimeout(total=60),
                )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        session = await self._ensure()
        resource = path.split("/namespaces/", 1)[-1].split("/")[1] if "/namespaces/" in path else ""
        self.counter.counts[(method, resource)] += 1
        if self._on_request is not None:
            self._on_request(method, resource)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with session.request(
            method, self._server + path, params=params, data=data, headers=headers
        ) as response:
            payload = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, method, path, _message(payload))
            if text:
                return payload
            return json.loads(payload) if payload else None

    # --- children -----------------------------------------------------------------------

    @_uses("", "secrets", "create")
    async def create_secret(self, obj: Mapping[str, Any]) -> bool:
        """Create a Secret; False when one of that name exists already (it is never read:
        the operator needs no permission to read Secrets)."""
        try:
            await self._request(
                "POST", _object_path("Secret", obj["metadata"]["namespace"]), body=obj
            )
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    @_uses("monitoring.coreos.com", "podmonitors", "delete")
    @_uses("monitoring.coreos.com", "prometheusrules", "delete")
    @_uses("", "configmaps", "delete")
    @_uses("apps", "deployments", "delete")
    @_uses("", "services", "delete")
    @_uses("gateway.networking.k8s.io", "httproutes", "delete")
    @_uses("gateway.networking.k8s.io", "grpcroutes", "delete")
    async def delete_optional(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child (a monitoring child switched off, a revision no longer kept); absent
        (or its kind no longer served) is fine."""
        try:
            await self._request("DELETE", _object_path(kind, namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise

    @_uses("batch", "jobs", "create", "patch")
    @_uses("apps", "deployments", "create", "patch")
    @_uses("", "services", "create", "patch")
    @_uses("monitoring.coreos.com", "podmonitors", "create", "patch")
    @_uses("monitoring.coreos.com", "prometheusrules", "create", "patch")
    @_uses("", "configmaps", "create", "patch")
    @_uses("gateway.networking.k8s.io", "httproutes", "create", "patch")
    @_uses("gateway.networking.k8s.io", "grpcroutes", "create", "patch")
    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply one child with the operator's field manager."""
        meta = obj["metadata"]
        path = _object_path(obj["kind"], meta["namespace"], meta["name"])
        result: dict[str, Any] = await self._request(
            "PATCH",
            path,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    @_uses("apps", "deployments", "patch")
    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Change only the replicas of a Deployment (its pod template stays untouched)."""
        await self._request(
            "PATCH",
            _object_path("Deployment", namespace, name),
            params={"fieldManager": FIELD_MANAGER},
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    @_uses("batch", "jobs", "get")
    @_uses("apps", "deployments", "get")
    @_uses("", "services", "get")
    @_uses("monitoring.coreos.com", "podmonitors", "get")
    @_uses("monitoring.coreos.com", "prometheusrules", "get")
    @_uses("", "configmaps", "get")
    @_uses("gateway.networking.k8s.io", "httproutes", "get")
    @_uses("gateway.networking.k8s.io", "grpcroutes", "get")
    @_uses("gateway.networking.k8s.io", "gateways", "get")
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Read one object; None when it does not exist. Raises ApiError with `kind_missing`
        when the cluster does not serve the kind at all (a CRD not installed)."""
        try:
            result: dict[str, Any] = await self._request("GET", _object_path(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404 and not exc.kind_missing:
                return None
            raise
        return result

    @_uses("batch", "jobs", "list")
    @_uses("", "pods", "list")
    @_uses("apps", "deployments", "list")
    @_uses("", "services", "list")
    async def list_objects(
        self,
        kind: Literal["Job", "Pod", "Deployment", "Service"],
        namespace: str,
        selector: Mapping[str, str],
    ) -> list[dict[str, Any]]:
        """List objects of a kind matching a label selector."""
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        result = await self._request(
            "GET", _object_path(kind, namespace), params={"labelSelector": label_selector}
        )
        items: list[dict[str, Any]] = result.get("items", [])
        # A list's items carry no kind/apiVersion (the list does): restore them, so an item
        # compares with a rendered child exactly as a GET of it would.
        for item in items:
            item.setdefault("apiVersion", result.get("apiVersion", ""))
            item.setdefault("kind", kind)
        return items

    @_uses("batch", "jobs", "delete")
    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a build Job and, in the background, its pods."""
        try:
            await self._request(
                "DELETE",
                _object_path("Job", namespace, name),
                params={"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    @_uses("", "pods/log", "get")
    async def read_log_tail(self, namespace: str, pod: str, container: str, lines: int) -> str:
        """The last lines of a container's log."""
        path = _object_path("Pod", namespace, pod) + "/log"
        try:
            result: str = await self._request(
                "GET",
                path,
                params={"container": container, "tailLines": str(lines), "limitBytes": "8192"},
                text=True,
            )
        except ApiError as exc:
            return f"(log unavailable: {exc})"
        return result

    @_uses(api.GROUP, api.PLURAL, "get")
    async def get_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Read a ModelDeployment; None when it is gone."""
        return await self.get("ModelDeployment", namespace, name)

    @_uses(api.GROUP, api.PLURAL, "patch")
    async def remove_annotation(self, namespace: str, name: str, key: str) -> None:
        """Remove one annotation of a ModelDeployment (metadata only: never its spec)."""
        await self._request(
            "PATCH",
            _object_path(api.KIND, namespace, name),
            params={"fieldManager": FIELD_MANAGER},
            body={"metadata": {"annotations": {key: None}}},
            content_type="application/merge-patch+json",
        )

    @_uses(api.GROUP, f"{api.PLURAL}/status", "patch")
    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Write the status subresource (never spec) with a JSON merge patch."""
        await self._request(
            "PATCH",
            _object_path(api.KIND, namespace, name) + "/status",
            params={"fieldManager": FIELD_MANAGER},
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    @_uses("", "events", "create")
    async def post_event(
        self,
        md: api.ModelDeployment,
        *,
        type_: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        now: str,
    ) -> None:
        """Record an Event on a ModelDeployment."""
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{md.name}.", "namespace": md.namespace},
            "involvedObject": {
                "apiVersion": f"{api.GROUP}/{api.VERSION}",
                "kind": api.KIND,
                "name": md.name,
                "namespace": md.namespace,
                "uid": md.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
        }
        await self._request("POST", _object_path("Event", md.namespace), body=body)


def _message(payload: str) -> str:
    try:
        decoded = json.loads(payload)
    except ValueError:
        return payload[:500]
    if isinstance(decoded, dict) and "message" in decoded:
        return str(decoded["message"])
    return payload[:500]


def login() -> kopf.ConnectionInfo:
    """Credentials from the pod's service account, else from KUBECONFIG or ~/.kube/config."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise RuntimeError(
            "no Kubernetes credentials: neither a service account nor KUBECONFIG/~/.kube/config"
        )
    return info
