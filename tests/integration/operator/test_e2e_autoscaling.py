"""The built-in autoscaler end to end: real serving pods, the real Prometheus scraping them, real
load from the host against the model's Service, the operator as a process.

One story, because each phase starts from the last one's state: load above the target scales
out and stays out; Prometheus cut off from the operator (with the load gone too, which would
otherwise scale down) holds the replicas and says so within two intervals; Prometheus back, the
autoscaler resumes by itself, and the idle model returns to minReplicas only after the
stabilization window. The operator never writes the spec. Then the scale subresource without
the autoscaler: `kubectl scale` on an object without spec.replicas.

Prometheus is cut off by a TCP forwarder between the operator and the cluster's Prometheus
(tests/support/tcp_proxy.py): the operator sees exactly a stopped Prometheus (connection
refused), and the Prometheus the rest of the suite reads keeps running.
"""

from __future__ import annotations

import itertools
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelship import naming
from modelship.kube import FIELD_MANAGER

from tests.support.cluster import Cluster, kubectl
from tests.support.load import SteadyLoad
from tests.support.prometheus import prometheus_url
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import holds_for, wait_until

from .conftest import (
    Models,
    OperatorProcess,
    Sampler,
    free_port,
    model_file,
    ready_and_scraped,
    serving_env,
    serving_namespace,
    stopped_at_the_end,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

INTERVAL = 5  # spec.scaling.interval, seconds
SCRAPE = 5  # hack/monitoring.sh's scrapeInterval
STABILIZATION = 30  # spec.scaling.scaleDownStabilizationSeconds, shortened
STABLE_WINDOW = 60  # scaling.queries.derive_windows(5, 5).stable_seconds
TARGET = 5  # requests per second per replica
# One request at a time with a 50ms pause: ~15-20 requests/s, so ~4 replicas, under the cap.
PAUSE_S = 0.05
MAX_REPLICAS = 8
# The bound on flapping: at most one direction change per 5 minutes of steady load.
STEADY_SECONDS = 300
# Slack for a status write and the test's own polling, on top of what the issue bounds.
SLACK = 10


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = urllib.parse.urlsplit(prometheus_url())
    assert target.hostname is not None and target.port is not None
    forwarder = TcpProxy(target.hostname, target.port).open()
    try:
        yield forwarder
    finally:
        forwarder.close()


@pytest.fixture
def scaling_operator(
    models: Models, operator_environment: dict[str, str], proxy: TcpProxy, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator as a process with the real runtime image, reading Prometheus through the
    forwarder (not started yet)."""
    serving_namespace(models)
    env = {
        **operator_environment,
        **serving_env(),
        "MODELSHIP_PROMETHEUS_URL": proxy.url,
        "MODELSHIP_PROMETHEUS_SCRAPE_INTERVAL_SECONDS": str(SCRAPE),
        "MODELSHIP_METRICS_PORT": str(free_port()),
    }
    yield from stopped_at_the_end(OperatorProcess(models.namespace, env, tmp_path / "operator.log"))


@dataclass
class ReplicaWatch(Sampler):
    """Samples the autoscaler's count (status.autoscaling.desiredReplicas): every change, with
    when it was seen."""

    changes: list[tuple[float, int]] = field(default_factory=list)

    def sample(self) -> None:
        try:
            desired = (self.models.status(self.name).get("autoscaling") or {}).get(
                "desiredReplicas"
            )
        except ApiException:  # a failed read is a missed sample, not a change
            return
        if desired is not None and (not self.changes or self.changes[-1][1] != desired):
            self.changes.append((time.monotonic(), int(desired)))


def _autoscaling(models: Models, name: str) -> dict[str, Any]:
    return dict(models.status(name).get("autoscaling") or {})


def _wait_scaling_active(
    models: Models, name: str, status: str, reason: str, *, timeout: float, after: str
) -> None:
    def reached() -> bool:
        cond = models.condition(name, "ScalingActive") or {}
        return (cond.get("status"), cond.get("reason")) == (status, reason)

    wait_until(reached, timeout=timeout, what=f"ScalingActive {status}/{reason} {after}")


def _serving_pods(models: Models, name: str, revision: str) -> int:
    deployment = naming.revision_name(name, revision)
    return int(models.apps.read_namespaced_deployment(deployment, models.namespace).spec.replicas)


def test_replicas_follow_the_load_hold_without_prometheus_and_return_after_stabilization(
    cluster: Cluster, models: Models, scaling_operator: OperatorProcess, proxy: TcpProxy
) -> None:
    scaling_operator.start()
    models.create(
        "busy",
        {
            "model": {"uri": model_file(models.namespace, "busy", 0.1)},
            "monitoring": {"podMonitor": True},
            "scaling": {
                "minReplicas": 1,
                "maxReplicas": MAX_REPLICAS,
                "interval": f"{INTERVAL}s",
                "scaleDownStabilizationSeconds": STABILIZATION,
                "targets": {"requestsPerSecondPerReplica": TARGET},
            },
        },
    )
    revision = ready_and_scraped(models, "busy")
    # Idle and measured: the autoscaler holds at minReplicas and says its metrics are there.
    _wait_scaling_active(
        models,
        "busy",
        "True",
        "MetricsAvailable",
        timeout=4 * INTERVAL + SLACK,
        after="once Prometheus scrapes the model",
    )
    assert _autoscaling(models, "busy")["desiredReplicas"] == 1
    watch = ReplicaWatch(models, "busy").start()
    service = models.core.read_namespaced_service("busy", models.namespace)
    load = SteadyLoad(
        service.spec.cluster_ip, "busy", pause_s=PAUSE_S, max_seconds=STEADY_SECONDS + 180
    ).start()
    started = time.monotonic()
    try:
        # Scale-out: within two intervals once the window holds the load (the short panic
        # window usually sees it first), plus the pods' start.
        scaled_to = int(
            wait_until(
                lambda: _scaled_out(models, "busy", revision),
                timeout=STABLE_WINDOW + 2 * INTERVAL + 30,
                what="md/busy scaled out, every wanted pod ready",
            )
        )
        print(f"scaled out to {scaled_to} {time.monotonic() - started:.0f}s after the load began")
        scaled = _autoscaling(models, "busy")
        assert scaled["lastScaleReason"].startswith("1 -> "), scaled
        assert (
            "requests/s" in scaled["lastScaleReason"]
            and f"target {TARGET}" in (scaled["lastScaleReason"])
        )
        ups = [e for e in models.events("busy") if e.reason == "ScaledUp"]
        assert ups and "requests/s" in ups[0].message, [e.message for e in ups]
        # Steady load for five minutes: at most one change of direction (the panic window may
        # overshoot, and stabilization brings it back once), never back down to one replica.
        holds_for(lambda: _steady(models, "busy", revision, watch), seconds=STEADY_SECONDS)
    finally:
        outcomes = load.stop()
    assert outcomes.failures == [], outcomes.failures[:5]
    print(f"answers during the load: {outcomes.total}")

    # Prometheus gone, and the load too: without data nothing moves, and status says why.
    warned = sum(e.reason == "MetricsUnavailable" for e in models.events("busy"))
    proxy.close()
    cut = time.monotonic()
    _wait_scaling_active(
        models,
        "busy",
        "False",
        "MetricsUnavailable",
        timeout=2 * INTERVAL + SLACK,
        after="after Prometheus went away",
    )
    print(f"MetricsUnavailable {time.monotonic() - cut:.0f}s after Prometheus went away")
    held = int(_autoscaling(models, "busy")["desiredReplicas"])
    message = (models.condition("busy", "ScalingActive") or {})["message"]
    assert "unreachable" in message and "modelship_requests_total" in message, message
    # Longer than the stabilization window: with data this idle model would have scaled down.
    holds_for(
        lambda: _check_count(models, "busy", revision, held), seconds=STABILIZATION + INTERVAL
    )
    assert sum(e.reason == "MetricsUnavailable" for e in models.events("busy")) == warned + 1

    # Back: the autoscaler resumes by itself, and scales down only a stabilization window
    # after the data came back (the hold counted as recommending the running count).
    proxy.open()
    back = time.monotonic()
    _wait_scaling_active(
        models,
        "busy",
        "True",
        "MetricsAvailable",
        timeout=2 * INTERVAL + SLACK,
        after="again once Prometheus answers",
    )
    wait_until(
        lambda: _serving_pods(models, "busy", revision) == 1,
        timeout=STABLE_WINDOW + STABILIZATION + 3 * INTERVAL + SLACK,
        what="md/busy back at minReplicas",
    )
    # Status follows the Deployments in the same reconcile.
    wait_until(lambda: watch.changes[-1][1] == 1, timeout=SLACK, what="status at 1 replica")
    watch.stop()
    print(
        f"replicas over time: {[(round(t - started), n) for t, n in watch.changes]}; "
        f"Prometheus cut at {cut - started:.0f}s, back at {back - started:.0f}s"
    )
    assert all(n == held for t, n in watch.changes if cut <= t < back), watch.changes
    down_at = next(t for t, n in watch.changes if t >= back and n < held)
    # The last held evaluation, remembered as a recommendation of the running count, may be up
    # to one interval before the data came back: the window counts from it.
    assert down_at - back >= STABILIZATION - INTERVAL, (down_at - back, watch.changes)
    after = [held] + [n for t, n in watch.changes if t >= back]
    assert all(d < 0 for d in _directions(after)), watch.changes
    # Scaling up is progress, never degradation: no Warning about replicas on the way.
    assert not [e.message for e in models.events("busy") if e.reason == "Degraded"]
    assert any(e.reason == "ScaledDown" for e in models.events("busy"))
    assert any(e.reason == "MetricsAvailable" for e in models.events("busy"))

    # The operator owned the count, never the spec: it wrote status, Deployments and Events.
    fields = models.get("busy")["metadata"]["managedFields"]
    ours = [f for f in fields if f["manager"] == FIELD_MANAGER]
    assert all(f.get("subresource") == "status" for f in ours), ours
    assert models.get("busy")["spec"]["replicas"] == 1  # the API's default, as created
    # A second owner of the count is refused, naming the one that owns it.
    refused = _kubectl_scale(cluster, models, "busy", 2)
    assert refused.returncode != 0 and "autoscaler owns it" in refused.stderr, refused.stderr


def _scaled_out(models: Models, name: str, revision: str) -> int | None:
    """The autoscaler's count once it is above one and every pod of it is ready."""
    desired = int(_autoscaling(models, name).get("desiredReplicas", 1))
    deployment = models.apps.read_namespaced_deployment(
        naming.revision_name(name, revision), models.namespace
    )
    ready = deployment.status.ready_replicas or 0
    return desired if desired > 1 and deployment.spec.replicas == desired == ready else None


def _directions(counts: list[int]) -> list[int]:
    """+1 per scale-up, -1 per scale-down, in order."""
    return [1 if b > a else -1 for a, b in itertools.pairwise(counts)]


def _flips(counts: list[int]) -> int:
    """How often the direction of scaling changed."""
    return sum(a != b for a, b in itertools.pairwise(_directions(counts)))


def _steady(models: Models, name: str, revision: str, watch: ReplicaWatch) -> None:
    counts = [n for _, n in watch.changes]
    assert _flips(counts) <= 1, watch.changes
    assert _serving_pods(models, name, revision) >= 2, _autoscaling(models, name).get("reason")


def _check_count(models: Models, name: str, revision: str, count: int) -> None:
    pods = _serving_pods(models, name, revision)
    assert pods == count, (pods, _autoscaling(models, name).get("reason"))


def _kubectl_scale(
    cluster: Cluster, models: Models, name: str, replicas: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            kubectl(),
            "--kubeconfig",
            cluster.kubeconfig,
            "-n",
            models.namespace,
            "scale",
            f"md/{name}",
            f"--replicas={replicas}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubectl_scale_works_on_an_object_without_spec_replicas(
    cluster: Cluster, models: Models, serving_operator: OperatorProcess
) -> None:
    serving_operator.start()
    models.create("plain", {"model": {"uri": model_file(models.namespace, "plain", 0.1)}})
    revision = str(wait_until(lambda: models.ready_stable("plain"), timeout=300, what="Ready"))
    scaled = _kubectl_scale(cluster, models, "plain", 2)
    assert scaled.returncode == 0, scaled.stderr
    deployment = naming.revision_name("plain", revision)
    wait_until(
        lambda: (
            models.apps.read_namespaced_deployment(
                deployment, models.namespace
            ).status.ready_replicas
            == 2
        ),
        timeout=120,
        what="two serving pods ready",
    )
    assert models.status("plain")["replicas"] == 2
