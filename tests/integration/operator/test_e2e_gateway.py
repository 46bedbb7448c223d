"""End to end on a real node through a real Gateway (Contour + Envoy, started by cluster-up):
the gatewayAPI router weights an HTTPRoute over each revision's Service. Steady load sent to
the Gateway's listener on 127.0.0.1 sees each step's weight in the share of canary answers, a
promotion and a rollback with zero failed requests; a Gateway that does not exist holds the
rollout and says so; gRPC reaches the model through the Gateway on its hostname."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from modelship import naming

from tests.support.load import Answer, SteadyLoad
from tests.support.prometheus import read_endpoints
from tests.support.waiting import holds_for, wait_until

from .conftest import Models, OperatorProcess, model_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# How far the observed share of canary answers may be from the step's weight, in percentage
# points: a step of ~10 s at ~30 requests/s is ~300 draws, whose binomial spread at 50% is ~3
# points; Envoy's weighted choice is random per request.
SHARE_TOLERANCE = 10.0


def _gateway() -> tuple[str, int, dict[str, str]]:
    """The Gateway cluster-up started: (host, port, its parentRef)."""
    endpoints = read_endpoints()
    missing = {"GATEWAY_URL", "GATEWAY_NAME", "GATEWAY_NAMESPACE"} - set(endpoints)
    assert not missing, f"{missing} not in .cluster/endpoints.env: cluster-up started no Gateway"
    url = urllib.parse.urlsplit(endpoints["GATEWAY_URL"])
    assert url.hostname is not None and url.port is not None
    ref = {"name": endpoints["GATEWAY_NAME"], "namespace": endpoints["GATEWAY_NAMESPACE"]}
    return url.hostname, url.port, ref


def _route(models: Models, name: str, plural: str = "httproutes") -> dict[str, Any]:
    return dict(
        models.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", models.namespace, plural, name
        )
    )


def _weights(models: Models, name: str, plural: str = "httproutes") -> list[tuple[str, int]]:
    """(backend Service, weight) of the route's one rule."""
    (rule,) = _route(models, name, plural)["spec"]["rules"]
    return [(ref["name"], ref["weight"]) for ref in rule["backendRefs"]]


def _canary(models: Models, name: str) -> dict[str, Any]:
    return dict(models.status(name).get("canary") or {})


def _routing(models: Models, name: str) -> dict[str, Any] | None:
    return models.condition(name, "TrafficRouting")


def _wait_accepted(models: Models, name: str) -> None:
    try:
        wait_until(
            lambda: (c := _routing(models, name)) is not None and c["status"] == "True",
            timeout=30,
            what="TrafficRouting True",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; TrafficRouting is {_routing(models, name)}") from exc


def _share(answers: list[Answer], revision: str, since: float, until: float) -> tuple[float, int]:
    """Percent of the answers sent in [since, until) that `revision` made, and how many."""
    window = [a for a in answers if since <= a.at < until and a.failure is None]
    assert len(window) >= 100, f"only {len(window)} answers in the window"
    return 100.0 * sum(a.revision == revision for a in window) / len(window), len(window)


def _gateway_spec(uri: str, ref: dict[str, str], **router: Any) -> dict[str, Any]:
    return {
        "model": {"uri": uri},
        "replicas": 2,
        "rollout": {
            "steps": [10, 50, 100],
            "interval": "12s",
            "trafficRouter": {"type": "gatewayAPI", "parentRefs": [ref], **router},
        },
    }


def test_gateway_weights_steps_promote_and_roll_back_with_no_failed_request(
    models: Models, serving_operator: OperatorProcess
) -> None:
    host, port, ref = _gateway()
    name = "gw"
    serving_operator.start()
    models.create(name, _gateway_spec(model_file(models.namespace, f"{name}-a", 0.1), ref))
    stable = wait_until(lambda: models.ready_stable(name), timeout=300, what=f"md/{name} Ready")
    _wait_accepted(models, name)
    assert models.status(name)["gatewayURL"] == f"http://{host}:{port}/v2/models/{name}"
    stable_service = naming.revision_name(name, stable)
    assert _weights(models, name) == [(stable_service, 100)]

    load = SteadyLoad(host, name, port=port).start()
    try:
        wait_until(lambda: load.answered_by(stable) >= 20, timeout=30, what="load answered")
        models.patch_spec(name, {"model": {"uri": model_file(models.namespace, f"{name}-b", 0.2)}})
        canary = models.new_revision(name, stable)
        canary_service = naming.revision_name(name, canary)

        shares: list[tuple[int, float, int]] = []
        for index, weight in enumerate([10, 50]):
            began = wait_until(
                lambda i=index: (
                    (c := _canary(models, name)).get("step") == i and c.get("stepStartedAt") and c
                ),
                timeout=300,
                what=f"step {index + 1} begun",
            )
            since = time.time()
            assert began["trafficWeight"] == weight
            # Exact, whatever the pods: the stable keeps its two, the canary has its share.
            assert (began["stableReplicas"], began["canaryReplicas"]) == (2, 1)
            assert _weights(models, name) == [
                (stable_service, 100 - weight),
                (canary_service, weight),
            ]
            # The step runs 12 s from stepStartedAt: measure 9 s of it.
            wait_until(lambda s=since: time.time() >= s + 9, timeout=15, what="9 s of the step")
            share, count = _share(load.snapshot().answers, canary, since, since + 9)
            shares.append((weight, share, count))
            assert abs(share - weight) <= SHARE_TOLERANCE, shares

        wait_until(lambda: models.ready_stable(name) == canary, timeout=120, what="promoted")
        assert models.status(name)["lastDecision"]["action"] == "Promoted"
        wait_until(
            lambda: _weights(models, name) == [(canary_service, 100)],
            timeout=30,
            what="the route on the promoted revision alone",
        )
        promoted_at = time.time()

        # A third revision, aborted at its first step: the route goes back to the stable first.
        models.patch_spec(name, {"model": {"uri": model_file(models.namespace, f"{name}-c", 0.3)}})
        third = models.new_revision(name, stable, canary)
        wait_until(
            lambda: (
                (c := _canary(models, name)).get("revision") == third and c.get("stepStartedAt")
            ),
            timeout=300,
            what="the third revision's first step begun",
        )
        wait_until(lambda: load.answered_by(third) >= 1, timeout=30, what="the third answers")
        models.act(name, "abort")
        wait_until(lambda: models.decision(name) == "RolledBack", timeout=30, what="rolled back")
        assert _weights(models, name) == [(canary_service, 100)]
        rolled_back = time.time()
        third_deployment = naming.revision_name(name, third)
        wait_until(
            lambda: (
                not models.apps.read_namespaced_deployment(
                    third_deployment, models.namespace
                ).status.ready_replicas
            ),
            timeout=60,
            what="the rolled-back revision's pods gone",
        )
        wait_until(
            lambda: sum(a.at >= rolled_back + 2 for a in load.snapshot().answers) >= 50,
            timeout=30,
            what="load after the rollback",
        )
    finally:
        outcomes = load.stop()
    print(f"shares (weight, observed %, answers): {shares}; answers: {dict(outcomes.by_revision)}")
    assert outcomes.failures == [], serving_operator.output()
    assert set(outcomes.by_revision) == {stable, canary, third}
    # After the rollback's route reached Envoy (a second at most), only the stable answers.
    late = [a.revision for a in outcomes.answers if a.at >= rolled_back + 2]
    assert late and set(late) == {canary}
    assert all(a.revision != stable for a in outcomes.answers if a.at >= promoted_at + 2)


def test_a_gateway_that_does_not_exist_holds_the_rollout(
    models: Models, serving_operator: OperatorProcess
) -> None:
    _, _, ref = _gateway()
    name = "nogw"
    missing = {"name": "no-such-gateway", "namespace": ref["namespace"]}
    serving_operator.start()
    spec = _gateway_spec(model_file(models.namespace, f"{name}-a", 0.1), missing)
    models.create(name, spec)
    stable = wait_until(lambda: models.ready_stable(name), timeout=300, what=f"md/{name} Ready")
    routing = wait_until(
        lambda: (c := _routing(models, name)) is not None and c["status"] == "False" and c,
        timeout=30,
        what="TrafficRouting False",
    )
    assert routing["reason"] == "GatewayNotFound"
    assert f"{missing['namespace']}/{missing['name']}" in routing["message"]

    models.patch_spec(name, {"model": {"uri": model_file(models.namespace, f"{name}-b", 0.2)}})
    canary = models.new_revision(name, stable)
    wait_until(
        lambda: (
            _canary(models, name).get("revision") == canary
            and models.apps.read_namespaced_deployment(
                naming.revision_name(name, canary), models.namespace
            ).status.ready_replicas
        ),
        timeout=300,
        what="the canary's pod ready",
    )

    def held() -> None:
        canary_status = _canary(models, name)
        assert canary_status["step"] == 0 and not canary_status.get("stepStartedAt")
        assert models.status(name)["revisions"]["stable"]["revision"] == stable
        routing = _routing(models, name)
        assert routing is not None and routing["reason"] == "GatewayNotFound"

    # Two intervals and more: the step's clock never starts, nothing is promoted.
    holds_for(held, seconds=26)
    progressing = models.condition(name, "Progressing")
    assert progressing is not None and "gatewayAPI router" in progressing["message"]


def test_grpc_reaches_the_model_through_the_gateway_on_its_hostname(
    models: Models, serving_operator: OperatorProcess
) -> None:
    host, port, ref = _gateway()
    name = "gwgrpc"
    hostname = f"{name}.{models.namespace}.example"
    serving_operator.start()
    spec = _gateway_spec(model_file(models.namespace, f"{name}-a", 0.5), ref, hostnames=[hostname])
    models.create(name, spec)
    stable = wait_until(lambda: models.ready_stable(name), timeout=300, what=f"md/{name} Ready")
    _wait_accepted(models, name)
    assert "HTTPRoute and GRPCRoute" in (_routing(models, name) or {})["message"]
    assert _weights(models, name, "grpcroutes") == [(naming.revision_name(name, stable), 100)]
    assert models.status(name)["gatewayURL"] == f"http://{hostname}:{port}/v2/models/{name}"

    # The client dials the Gateway's listener and names the model's host as the authority.
    client = grpcclient.InferenceServerClient(
        f"{host}:{port}", channel_args=[("grpc.default_authority", hostname)]
    )
    data = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    inp = grpcclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(data)
    expected = data @ (np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5)

    def answers() -> Any:
        try:
            return client.infer(name, [inp])
        except grpcclient.InferenceServerException:
            return None  # Envoy takes the new route within a moment of its acceptance

    result = wait_until(answers, timeout=20, what="a gRPC answer through the Gateway")
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-5)
    assert result.get_response().model_version == stable
    client.close()
