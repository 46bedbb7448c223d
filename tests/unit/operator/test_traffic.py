"""The gatewayAPI router's pure parts: the routes' backends, what the Gateway says of them
(the TrafficRouting condition and the weight it carries), and the URL through the Gateway."""

from __future__ import annotations

from typing import Any

import pytest
from modelship import api, render, traffic

from .conftest import make_md


def gateway_md(**router: Any) -> api.ModelDeployment:
    return make_md(
        {
            "model": {"uri": "s3://m/model.onnx"},
            "rollout": {
                "steps": [10, 100],
                "trafficRouter": {
                    "type": "gatewayAPI",
                    "parentRefs": [{"name": "web", "namespace": "gw"}],
                    **router,
                },
            },
        }
    )


MD = gateway_md()
GATEWAY = {
    "spec": {"listeners": [{"name": "http", "protocol": "HTTP", "port": 10880}]},
    "status": {"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}]},
}


def route(
    weights: dict[str, int],
    *,
    generation: int = 2,
    seen: int = 2,
    accepted: str = "True",
    resolved: str = "True",
    kind: str = "HTTPRoute",
) -> traffic.ObservedRoute:
    condition = {"observedGeneration": seen, "reason": "Because", "message": "said so"}
    return traffic.ObservedRoute.from_body(
        {
            "kind": kind,
            "metadata": {"name": MD.name, "namespace": MD.namespace, "generation": generation},
            "spec": {
                "rules": [{"backendRefs": [{"name": s, "weight": w} for s, w in weights.items()]}]
            },
            "status": {
                "parents": [
                    {
                        "parentRef": {"name": "web", "namespace": "gw"},
                        "conditions": [
                            {**condition, "type": "Accepted", "status": accepted},
                            {**condition, "type": "ResolvedRefs", "status": resolved},
                        ],
                    }
                ]
            },
        }
    )


def observed(*routes: traffic.ObservedRoute, gateway: Any = GATEWAY) -> traffic.Observed:
    return traffic.Observed(routes={r.kind: r for r in routes}, gateways={("gw", "web"): gateway})


@pytest.mark.parametrize(
    ("seen", "status", "reason", "routed"),
    [
        (observed(route({"m-a": 90, "m-b": 10})), "True", "Accepted", 10),
        (observed(route({"m-a": 100})), "True", "Accepted", 0),
        (observed(route({"m-a": 90, "m-b": 10}, seen=1)), "Unknown", "Programming", None),
        (observed(route({"m-a": 100}, accepted="False")), "False", "NotAccepted", None),
        (observed(route({"m-a": 100}, resolved="False")), "False", "RefsNotResolved", None),
        (observed(route({"m-a": 100}), gateway=None), "False", "GatewayNotFound", None),
        (observed(), "Unknown", "RoutePending", None),
        (traffic.Observed(served=False), "False", "GatewayAPINotInstalled", None),
        (
            traffic.Observed(foreign=("HTTPRoute ns/m",), gateways={("gw", "web"): GATEWAY}),
            "False",
            "NameConflict",
            None,
        ),
    ],
)
def test_what_the_gateway_says_of_the_routes(
    seen: traffic.Observed, status: str, reason: str, routed: int | None
) -> None:
    verdict = traffic.judge(MD, seen)
    assert (verdict.status, verdict.reason, verdict.routed("m-b")) == (status, reason, routed)
    if reason == "GatewayNotFound":
        assert "gw/web" in verdict.message and "holds" in verdict.message


def test_a_route_without_an_answer_from_the_gateway_is_pending() -> None:
    silent = traffic.ObservedRoute.from_body(
        {"kind": "HTTPRoute", "metadata": {"name": "m", "namespace": "ns", "generation": 1}}
    )
    assert traffic.judge(MD, observed(silent)).reason == "Pending"


def test_with_hostnames_both_routes_must_carry_the_same_weights() -> None:
    md = gateway_md(hostnames=["m.example"])
    http = route({"m-a": 90, "m-b": 10})
    grpc = route({"m-a": 90, "m-b": 10}, kind="GRPCRoute")
    assert traffic.judge(md, observed(http, grpc)).routed("m-b") == 10
    assert traffic.judge(md, observed(http)).reason == "RoutePending"
    stale = route({"m-a": 100}, kind="GRPCRoute")
    assert traffic.judge(md, observed(http, stale)).routed("m-b") is None


@pytest.mark.parametrize(
    ("stable", "canary", "weight", "expected"),
    [
        (("m-a", "a"), None, 0, [("m-a", 100)]),
        (("m-a", "a"), ("m-b", "b"), 0, [("m-a", 100), ("m-b", 0)]),
        (("m-a", "a"), ("m-b", "b"), 10, [("m-a", 90), ("m-b", 10)]),
        (("m-a", "a"), ("m-b", "b"), 100, [("m-a", 0), ("m-b", 100)]),
    ],
)
def test_backends(
    stable: tuple[str, str],
    canary: tuple[str, str] | None,
    weight: int,
    expected: list[tuple[str, int]],
) -> None:
    assert [(b.service, b.weight) for b in traffic.backends(stable, canary, weight)] == expected


def test_routes_render_per_kind_with_namespaced_parents() -> None:
    plain = render.render_routes(MD, traffic.backends(("m-a", "a"), None, 0))
    assert [r["kind"] for r in plain] == ["HTTPRoute"]
    (rule,) = plain[0]["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": f"/v2/models/{MD.name}"}}]
    assert rule["backendRefs"] == [{"name": "m-a", "port": 8080, "weight": 100}]
    assert plain[0]["spec"]["parentRefs"][0]["namespace"] == "gw"
    assert "hostnames" not in plain[0]["spec"]
    named = render.render_routes(
        gateway_md(hostnames=["m.example"]), traffic.backends(("m-a", "a"), None, 0)
    )
    assert [r["kind"] for r in named] == ["HTTPRoute", "GRPCRoute"]
    assert named[1]["spec"]["hostnames"] == ["m.example"]
    assert named[1]["spec"]["rules"][0]["backendRefs"][0]["port"] == 8081


@pytest.mark.parametrize(
    ("router", "gateway", "url"),
    [
        ({}, GATEWAY, "http://127.0.0.1:10880/v2/models/{name}"),
        (
            {"hostnames": ["*.example", "m.example"]},
            GATEWAY,
            "http://m.example:10880/v2/models/{name}",
        ),
        ({}, {**GATEWAY, "status": {}}, None),
        ({}, None, None),
        (
            {},
            {**GATEWAY, "spec": {"listeners": [{"name": "h", "protocol": "HTTPS", "port": 443}]}},
            "https://127.0.0.1/v2/models/{name}",
        ),
    ],
)
def test_the_url_through_the_gateway(router: dict[str, Any], gateway: Any, url: str | None) -> None:
    md = gateway_md(**router)
    assert traffic.gateway_url(md, gateway) == (url.format(name=md.name) if url else None)
