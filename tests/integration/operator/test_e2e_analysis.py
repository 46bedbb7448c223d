"""End to end with real pods and the real Prometheus: each canary step judged on the figures
Prometheus scraped from both revisions. A good canary is promoted, an erroring canary (its input
signature breaks the clients' requests) and a slow canary (same answers, ~50x the latency) are
rolled back after their first interval, a canary with no traffic holds and says why; the stable
path loses no request."""

from __future__ import annotations

import time

import numpy as np
import pytest
from modelship import naming
from modelship.timestamps import parse_time

from tests.support.load import SteadyLoad
from tests.support.onnx_models import SLOW_BUILD_RESOURCES, write_slow_linear_onnx
from tests.support.store import ObjectStore
from tests.support.waiting import holds_for, wait_until

from .conftest import (
    Models,
    OperatorProcess,
    analysed_spec,
    model_file,
    ready_and_scraped,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

INTERVAL = 20


def test_a_good_canary_passes_each_step_and_is_promoted(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    first = model_file(models.namespace, "good-a", 0.1)
    models.create(
        "good",
        analysed_spec(first, replicas=4, steps=(25, 100), maxP99LatencyMs=1000, failureLimit=1),
    )
    stable = ready_and_scraped(models, "good")
    service = models.core.read_namespaced_service("good", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "good").start()
    try:
        models.patch_spec("good", {"model": {"uri": model_file(models.namespace, "good-b", 0.2)}})
        canary = models.new_revision("good", stable)
        try:
            wait_until(
                lambda: models.ready_stable("good") == canary,
                timeout=240,
                what="the canary promoted on its analysis",
            )
        except TimeoutError as exc:
            status = models.status("good")
            raise AssertionError((status.get("canary"), status.get("conditions"))) from exc
        status = models.status("good")
        assert status["lastDecision"]["action"] == "Promoted"
        advanced = [e.message for e in models.events("good") if e.reason == "StepAdvanced"]
        assert len(advanced) == 1 and "passed its analysis" in advanced[0], advanced
        assert "maxErrorRate" in advanced[0] or "checks passed" in advanced[0]
    finally:
        outcomes = load.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {outcomes.failures}")
    assert outcomes.failures == [], analysing_operator.output()
    assert set(outcomes.by_revision) == {stable, canary}


def test_an_erroring_canary_is_rolled_back_after_its_first_interval(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    first = model_file(models.namespace, "bad-a", 0.1)
    models.create("bad", analysed_spec(first, failureLimit=1))
    stable = ready_and_scraped(models, "bad")
    service = models.core.read_namespaced_service("bad", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "bad").start()
    # Five inputs where the clients send four: every request the canary gets fails with 400.
    wide = ObjectStore.from_endpoints().upload_linear(
        models.namespace, "bad-b", np.ones((5, 3), dtype=np.float32)
    )
    try:
        models.patch_spec("bad", {"model": {"uri": wide}})
        started = wait_until(
            lambda: (models.status("bad").get("canary") or {}).get("stepStartedAt"),
            timeout=240,
            what="the canary's first step begun",
        )
        wait_until(
            lambda: models.decision("bad") == "RolledBack",
            timeout=INTERVAL + 60,
            what="the erroring canary rolled back",
        )
        rolled_back = time.monotonic()
        status = models.status("bad")
        reason = status["lastDecision"]["reason"]
        assert "maxErrorRate" in reason and "1 of 1 failed intervals" in reason, reason
        assert status["lastDecision"]["at"] >= started
        degraded = models.condition("bad", "Degraded")
        assert degraded is not None and degraded["status"] == "True"
        selector = models.core.read_namespaced_service("bad", models.namespace).spec.selector
        assert selector[naming.REVISION_LABEL] == stable
        during = len(load.snapshot().failures)
        # Traffic is back on stable: from here on nothing fails.
        settle = rolled_back + 10
        wait_until(lambda: time.monotonic() >= settle, timeout=15, what="endpoints settled")
        after = len(load.snapshot().failures)
        served = load.answered_by(stable)
        wait_until(lambda: load.answered_by(stable) >= served + 100, timeout=30, what="serving")
    finally:
        outcomes = load.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {len(outcomes.failures)}")
    # Only the canary's answers failed, each a 400 naming the input: never the stable path.
    assert during > 0 and all("HTTP 400" in f for f in outcomes.failures), outcomes.failures[:5]
    assert len(outcomes.failures) == after, outcomes.failures[after:]


def test_a_slow_canary_is_rolled_back_on_its_p99_against_stable(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    first = model_file(models.namespace, "slow-a", 0.1)
    spec = analysed_spec(first, failureLimit=1, maxP99LatencyIncreaseVsStable=1.0)
    models.create("slow", spec)
    stable = ready_and_scraped(models, "slow")
    service = models.core.read_namespaced_service("slow", models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, "slow").start()
    # The same answers as a linear model, computed the long way: ~0.1 s a request on this CPU.
    slow = ObjectStore.from_endpoints().upload_linear(
        models.namespace,
        "slow-b",
        np.arange(12, dtype=np.float32).reshape(4, 3) * 0.2,
        writer=write_slow_linear_onnx,
    )
    try:
        models.patch_spec(
            "slow",
            {"model": {"uri": slow}, "optimization": {"resources": SLOW_BUILD_RESOURCES}},
        )
        started = wait_until(
            lambda: (models.status("slow").get("canary") or {}).get("stepStartedAt"),
            timeout=240,
            what="the canary's first step begun",
        )
        canary = models.status("slow")["revisions"]["current"]["revision"]
        wait_until(
            lambda: models.decision("slow") == "RolledBack",
            timeout=INTERVAL + 60,
            what="the slow canary rolled back",
        )
        status = models.status("slow")
        decision = status["lastDecision"]
        reason = decision["reason"]
        assert "maxP99LatencyIncreaseVsStable" in reason, reason
        assert "1 of 1 failed intervals" in reason, reason
        # The documented bound: scrape interval (5 s) + interval x failureLimit, plus a reconcile
        # and the Prometheus round trips.
        took = (parse_time(decision["at"]) - parse_time(started)).total_seconds()
        assert took <= INTERVAL + 5 + 5, (took, reason)
        selector = models.core.read_namespaced_service("slow", models.namespace).spec.selector
        assert selector[naming.REVISION_LABEL] == stable
        served = load.answered_by(stable)
        wait_until(lambda: load.answered_by(stable) >= served + 100, timeout=30, what="serving")
    finally:
        outcomes = load.stop()
    print(f"answers: {dict(outcomes.by_revision)}; failures: {len(outcomes.failures)}; {took} s")
    # Slow, not wrong: every request was answered, by either revision.
    assert outcomes.failures == [], outcomes.failures[:5]
    assert outcomes.by_revision[canary] > 0


def test_a_canary_without_traffic_holds_and_says_why(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    first = model_file(models.namespace, "idle-a", 0.1)
    models.create("idle", analysed_spec(first, inconclusiveLimit=10))
    ready_and_scraped(models, "idle")
    models.patch_spec("idle", {"model": {"uri": model_file(models.namespace, "idle-b", 0.2)}})
    held = wait_until(
        lambda: (
            (c := models.condition("idle", "CanaryAnalysis"))
            and c["reason"] == "Inconclusive"
            and c
        ),
        timeout=240 + INTERVAL,
        what="the first analysis inconclusive",
    )
    assert "maxErrorRate" in held["message"] and "requests" in held["message"], held

    # Three more intervals, observed throughout: held at step 1, never promoted.
    def held() -> None:
        status = models.status("idle")
        assert (status.get("canary") or {}).get("step") == 0, status.get("canary")
        assert models.decision("idle") not in ("StepAdvanced", "Promoted", "RolledBack")

    holds_for(held, seconds=3 * INTERVAL)
    assert models.status("idle")["canary"]["inconclusive"] >= 3
