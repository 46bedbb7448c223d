"""The gatewayAPI router (pure): the model's HTTPRoute (and, with hostnames, GRPCRoute) weighted
over its live revisions' Services, what the Gateway says of them (Accepted and ResolvedRefs at
the route's generation), the TrafficRouting condition, and the model's URL through the Gateway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelship import api, naming

GROUP = "gateway.networking.k8s.io"
CONDITION = "TrafficRouting"
RouteKind = Literal["HTTPRoute", "GRPCRoute"]
ROUTE_KINDS: tuple[RouteKind, ...] = ("HTTPRoute", "GRPCRoute")


@dataclass(frozen=True)
class Backend:
    """One revision's Service on the routes, and its share of requests in percent."""

    service: str
    revision: str
    weight: int


def route_kinds(spec: api.ModelDeploymentSpec) -> tuple[RouteKind, ...]:
    """The routes a gatewayAPI model has: gRPC carries the model's name in its message, not in
    a path, so only a model with its own hostnames can have a GRPCRoute of its own."""
    if spec.rollout.traffic_router.hostnames:
        return ROUTE_KINDS
    return ("HTTPRoute",)


def observed_needed(md: api.ModelDeployment) -> bool:
    """Whether a reconcile reads the routes: under the gatewayAPI router, and after it (to
    delete the routes it made; its TrafficRouting condition remembers it)."""
    if md.spec.rollout.traffic_router.type == "gatewayAPI":
        return True
    return any(c.type == CONDITION and c.reason != "NotImplemented" for c in md.status.conditions)


def gateways(md: api.ModelDeployment) -> list[tuple[str, str]]:
    """(namespace, name) of every Gateway the routes attach to."""
    return [
        (ref.namespace or md.namespace, ref.name)
        for ref in md.spec.rollout.traffic_router.parent_refs
    ]


def parent_refs(md: api.ModelDeployment) -> list[dict[str, Any]]:
    """The routes' parentRefs, namespaces spelled out (status is matched against them)."""
    refs: list[dict[str, Any]] = []
    for ref in md.spec.rollout.traffic_router.parent_refs:
        out: dict[str, Any] = {
            "group": GROUP,
            "kind": "Gateway",
            "name": ref.name,
            "namespace": ref.namespace or md.namespace,
        }
        if ref.section_name:
            out["sectionName"] = ref.section_name
        refs.append(out)
    return refs


@dataclass(frozen=True)
class ParentStatus:
    """What the controller of one Gateway wrote about a route."""

    gateway: tuple[str, str]
    accepted: Mapping[str, str] | None  # the Accepted condition (status, reason, message)
    resolved: Mapping[str, str] | None  # ResolvedRefs
    generation: int  # the route generation those conditions describe


@dataclass(frozen=True)
class ObservedRoute:
    """A route as read: its generation, the weight of each backend Service, parent statuses."""

    kind: RouteKind
    name: str
    namespace: str
    generation: int
    weights: Mapping[str, int]
    parents: tuple[ParentStatus, ...]
    body: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObservedRoute:
        """Read a route object."""
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        weights: dict[str, int] = {}
        for rule in spec.get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                weights[str(ref.get("name"))] = int(ref.get("weight", 1))
        parents = []
        for entry in (body.get("status") or {}).get("parents") or []:
            ref = entry.get("parentRef") or {}
            by_type = {c.get("type"): c for c in entry.get("conditions") or []}
            accepted, resolved = by_type.get("Accepted"), by_type.get("ResolvedRefs")
            seen = [c.get("observedGeneration", 0) for c in (accepted, resolved) if c]
            parents.append(
                ParentStatus(
                    gateway=(str(ref.get("namespace") or meta.get("namespace")), str(ref["name"])),
                    accepted=_condition(accepted),
                    resolved=_condition(resolved),
                    generation=min(seen) if seen else 0,
                )
            )
        return cls(
            kind=body.get("kind", "HTTPRoute"),
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            generation=int(meta.get("generation", 0)),
            weights=weights,
            parents=tuple(parents),
            body=body,
        )


def _condition(found: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    if found is None:
        return None
    return {k: str(found.get(k, "")) for k in ("status", "reason", "message")}


@dataclass(frozen=True)
class Observed:
    """The gatewayAPI side of a model as read before planning."""

    # False: the cluster serves no Gateway API routes (CRDs not installed).
    served: bool = True
    routes: Mapping[RouteKind, ObservedRoute | None] = field(default_factory=dict)
    # (namespace, name) -> the Gateway object, None when it does not exist.
    gateways: Mapping[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)
    # Routes of the model's route name that another owner holds: never adopted or overwritten.
    foreign: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The routes as the Gateway sees them: the TrafficRouting condition, and the canary weight
    it carries when every parent accepted every route at its generation (`routed`)."""

    status: api.ConditionStatus
    reason: str
    message: str
    # service name -> weight the Gateway carries; None while not accepted as they are.
    carried: Mapping[str, int] | None = None

    def routed(self, service: str) -> int | None:
        """The share the Gateway carries to `service` (0 when not on the routes), or None."""
        return None if self.carried is None else self.carried.get(service, 0)


def judge(md: api.ModelDeployment, observed: Observed) -> Verdict:
    """What the Gateway says of the model's routes as they are now."""
    kinds = route_kinds(md.spec)
    if not observed.served:
        return Verdict(
            "False",
            "GatewayAPINotInstalled",
            "the cluster serves no gateway.networking.k8s.io/v1 HTTPRoute: install the Gateway "
            "API CRDs and an implementation, or set spec.rollout.trafficRouter.type replicas; "
            "the rollout holds",
        )
    if observed.foreign:
        return Verdict(
            "False",
            "NameConflict",
            f"{', '.join(observed.foreign)} exists and is not owned by md/{md.name}: it is left "
            "alone and the rollout holds; rename or delete it",
        )
    missing = [f"{ns}/{name}" for (ns, name), gw in observed.gateways.items() if gw is None]
    if missing:
        return Verdict(
            "False",
            "GatewayNotFound",
            f"Gateway {', '.join(missing)} named in spec.rollout.trafficRouter.parentRefs does "
            "not exist; the rollout holds (no step advances, nothing is promoted)",
        )
    carried: dict[str, int] | None = None
    for kind in kinds:
        route = observed.routes.get(kind)
        if route is None:
            return Verdict(
                "Unknown", "RoutePending", f"no {kind} yet: it is made once a revision serves"
            )
        where = f"{kind} {route.namespace}/{route.name}"
        for gateway in gateways(md):
            parent = next((p for p in route.parents if p.gateway == gateway), None)
            named = f"Gateway {gateway[0]}/{gateway[1]}"
            if parent is None or parent.accepted is None:
                return Verdict(
                    "Unknown",
                    "Pending",
                    f"{where}: the controller of {named} has not answered yet; the rollout holds",
                )
            for label, found in (("accepted", parent.accepted), ("resolved", parent.resolved)):
                if found is not None and found["status"] == "False":
                    return Verdict(
                        "False",
                        "NotAccepted" if label == "accepted" else "RefsNotResolved",
                        f"{where} not {label} by {named}: {found['reason']}: "
                        f"{found['message']}; the rollout holds",
                    )
            if parent.generation < route.generation:
                return Verdict(
                    "Unknown",
                    "Programming",
                    f"{named} has not taken generation {route.generation} of {where} yet",
                )
        weights = dict(route.weights)
        if carried is not None and carried != weights:
            return Verdict(
                "Unknown", "Programming", "the HTTPRoute and GRPCRoute carry different weights"
            )
        carried = weights
    assert carried is not None
    total = sum(carried.values()) or 1
    shares = ", ".join(f"{s} {round(100 * w / total)}%" for s, w in carried.items())
    names = ", ".join(f"{ns}/{n}" for ns, n in gateways(md))
    return Verdict(
        "True",
        "Accepted",
        f"{' and '.join(kinds)} {md.name} accepted by Gateway {names}: {shares}",
        carried,
    )


def gateway_url(md: api.ModelDeployment, gateway: Mapping[str, Any] | None) -> str | None:
    """The model's inference URL through its first Gateway: the Gateway's address (or the
    model's first exact hostname) and the port of the listener the route attaches to."""
    refs = md.spec.rollout.traffic_router.parent_refs
    if gateway is None or not refs:
        return None
    listeners = (gateway.get("spec") or {}).get("listeners") or []
    section = refs[0].section_name
    listener = next(
        (
            item
            for item in listeners
            if (item.get("name") == section if section else item.get("protocol") in _SCHEMES)
        ),
        None,
    )
    if listener is None or listener.get("protocol") not in _SCHEMES:
        return None
    exact = [h for h in md.spec.rollout.traffic_router.hostnames if not h.startswith("*")]
    addresses = (gateway.get("status") or {}).get("addresses") or []
    host = exact[0] if exact else (addresses[0].get("value") if addresses else None)
    if not host:
        return None
    scheme, port = _SCHEMES[listener["protocol"]], int(listener["port"])
    default = {"http": 80, "https": 443}[scheme]
    authority = host if port == default else f"{host}:{port}"
    return f"{scheme}://{authority}/v2/models/{md.name}"


_SCHEMES = {"HTTP": "http", "HTTPS": "https"}


def backends(
    stable: tuple[str, str] | None, canary: tuple[str, str] | None, canary_weight: int
) -> list[Backend]:
    """The routes' backends: the stable (service, revision) with what the canary leaves, and
    the canary with its weight (absent: everything on the stable)."""
    out: list[Backend] = []
    if stable is not None:
        out.append(Backend(stable[0], stable[1], 100 - canary_weight if canary else 100))
    if canary is not None:
        out.append(Backend(canary[0], canary[1], canary_weight if stable else 100))
    return out


def values(md: api.ModelDeployment, chosen: Sequence[Backend]) -> dict[str, Any]:
    """What the route templates need besides the kind."""
    return {
        "name": naming.route_name(md.name),
        "namespace": md.namespace,
        "labels": naming.common_labels(md.name, "traffic"),
        "owner": naming.owner_reference(md),
        "parent_refs": parent_refs(md),
        "hostnames": list(md.spec.rollout.traffic_router.hostnames),
        "path": f"/v2/models/{md.name}",
        "backends": list(chosen),
        "http_port": naming.HTTP_PORT,
        "grpc_port": naming.GRPC_PORT,
    }
