"""End to end, the accuracy canary: clients predict through the model's Service, keep each
answer's signed token, and send the label back to the Service on a new connection (so it mostly
lands on another pod, of either revision). Real pods, the real Prometheus.

- The labelled predictions and correct ones Prometheus holds per revision are exactly those the
  clients sent, with three pods per revision.
- An inaccurate canary (fast, error-free, wrong) is rolled back on accuracy; an accurate one is
  promoted; one whose labels are too few holds with the counts in its condition, never promoted
  and never rolled back.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest
from modelship import naming

from tests.support.load import LabellingLoad
from tests.support.prometheus import Prometheus
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
# The clients' fixed input [1, 2, 3, 4] against arange(12).reshape(4, 3) * scale is
# [60, 70, 80] * scale: class 2. A model with the columns reversed says class 0.
TRUE_CLASS = 2


def _uri(models: Models, name: str, weights: np.ndarray[Any, Any]) -> str:
    return ObjectStore.from_endpoints().upload_linear(models.namespace, name, weights)


def _sums(prometheus: Prometheus, namespace: str, name: str, metric: str) -> dict[str, int]:
    """The counter summed over every pod, by the revision that made the predictions."""
    query = f'sum by (revision) ({metric}{{namespace="{namespace}", model="{name}"}})'
    return {s["metric"]["revision"]: round(float(s["value"][1])) for s in prometheus.query(query)}


def _pods(models: Models, name: str) -> dict[str, int]:
    """Pods of the ModelDeployment by revision, terminating ones included."""
    selector = ",".join(f"{k}={v}" for k, v in naming.server_selector(name).items())
    found = models.core.list_namespaced_pod(models.namespace, label_selector=selector).items
    return dict(collections.Counter(p.metadata.labels[naming.REVISION_LABEL] for p in found))


def test_accuracy_per_revision_is_exact_across_pods_and_revisions(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    spec = {
        "model": {"uri": model_file(models.namespace, "exact-a", 0.1)},
        "replicas": 6,
        "monitoring": {"podMonitor": True},
        # A step that outlasts the test: both revisions serve, three pods each.
        "rollout": {"steps": [50, 100], "interval": "30m"},
    }
    models.create("exact", spec)
    stable = ready_and_scraped(models, "exact")
    models.patch_spec("exact", {"model": {"uri": model_file(models.namespace, "exact-b", 0.2)}})
    wait_until(
        lambda: (models.status("exact").get("canary") or {}).get("stepStartedAt"),
        timeout=240,
        what="both revisions serving, three pods each",
    )
    canary = models.status("exact")["revisions"]["current"]["revision"]
    # The raw counters, summed over the pods Prometheus scrapes, are exact only while no pod
    # that counted labels goes away: wait until the stable's surplus pods are gone. (The
    # analysis reads increase() over its window, which keeps a gone pod's counts.)
    wait_until(
        lambda: _pods(models, "exact") == {stable: 3, canary: 3},
        timeout=120,
        what="three pods per revision, none terminating",
    )
    service = models.core.read_namespaced_service("exact", models.namespace)

    # Every fourth label disagrees with the prediction: 75% accuracy, known exactly per revision.
    def truth(index: int, predicted: int) -> int:
        return predicted if index % 4 else (predicted + 1) % 3

    load = LabellingLoad(service.spec.cluster_ip, "exact", truth, max_requests=400).start()
    wait_until(lambda: load.snapshot().total >= 400, timeout=120, what="400 labelled requests")
    outcomes = load.stop()
    sent = load.tally()
    assert outcomes.failures == [] and sent.refused == [], (outcomes.failures, sent.refused)
    assert set(sent.labelled) == {stable, canary}, sent.labelled

    prometheus = Prometheus.from_endpoints()
    namespace = models.namespace
    try:
        wait_until(
            lambda: (
                _sums(prometheus, namespace, "exact", "modelship_feedback_predictions_total")
                == dict(sent.labelled)
                and _sums(prometheus, namespace, "exact", "modelship_feedback_correct_total")
                == dict(sent.correct)
            ),
            timeout=60,
            what="Prometheus holding exactly the labels sent",
        )
    except TimeoutError as exc:
        raise AssertionError(
            (
                _sums(prometheus, namespace, "exact", "modelship_feedback_predictions_total"),
                _sums(prometheus, namespace, "exact", "modelship_feedback_correct_total"),
                sent,
            )
        ) from exc
    # The labels did cross: pods of one revision counted labels of the other's predictions.
    crossed = prometheus.query(
        f'modelship_feedback_predictions_total{{namespace="{namespace}", model="exact"}} > 0'
    )
    owners = {(s["metric"]["pod"].split("-")[1], s["metric"]["revision"]) for s in crossed}
    assert any(own != counted for own, counted in owners), owners
    print(f"labels sent: {dict(sent.labelled)}, correct: {dict(sent.correct)}")


def _accuracy_spec(uri: str) -> dict[str, Any]:
    return analysed_spec(
        uri,
        interval_s=INTERVAL,
        minAccuracy=0.8,
        maxAccuracyDropVsStable=0.1,
        minLabelledSamples=30,
        accuracyWindow="30s",
        failureLimit=1,
        inconclusiveLimit=20,
    )


def test_the_accuracy_canary_rolls_back_the_wrong_promotes_the_right_and_waits_for_labels(
    models: Models, analysing_operator: OperatorProcess
) -> None:
    analysing_operator.start()
    weights = np.arange(12, dtype=np.float32).reshape(4, 3)
    models.create("acc", _accuracy_spec(_uri(models, "acc-a", weights * 0.1)))
    stable = ready_and_scraped(models, "acc")
    service = models.core.read_namespaced_service("acc", models.namespace)
    load = LabellingLoad(service.spec.cluster_ip, "acc", lambda _i, _p: TRUE_CLASS).start()
    try:
        # 1. Fast and error-free, but wrong: the columns reversed, class 0 for every request.
        models.patch_spec("acc", {"model": {"uri": _uri(models, "acc-wrong", weights[:, ::-1])}})
        wait_until(
            lambda: models.decision("acc") == "RolledBack",
            timeout=240 + INTERVAL,
            what="the inaccurate canary rolled back",
        )
        reason = models.status("acc")["lastDecision"]["reason"]
        assert "maxAccuracyDropVsStable" in reason and "accuracy 0%" in reason, reason
        assert "vs stable 100%" in reason, reason
        revisions = models.status("acc")["revisions"]
        assert revisions["stable"]["revision"] == stable
        wrong = revisions["current"]["revision"]

        # 2. As accurate as stable: promoted on the labels' evidence.
        models.patch_spec("acc", {"model": {"uri": _uri(models, "acc-right", weights * 0.2)}})
        right = models.new_revision("acc", stable, wrong)
        wait_until(
            lambda: models.ready_stable("acc") == right,
            timeout=240,
            what="the accurate canary promoted",
        )
        advanced = [e.message for e in models.events("acc") if e.reason == "StepAdvanced"]
        assert any("maxAccuracyDropVsStable" in m or "checks passed" in m for m in advanced)

        # 3. Labels too few (one answer in fifty labelled): the canary holds and says so.
        load.label_every = 50
        models.patch_spec("acc", {"model": {"uri": _uri(models, "acc-scarce", weights * 0.3)}})
        held = wait_until(
            lambda: (
                (c := models.condition("acc", "CanaryAnalysis"))
                and c["reason"] == "Inconclusive"
                and "labels < 30 needed" in c["message"]
                and c
            ),
            timeout=120 + 2 * INTERVAL,
            what="the canary holding for labels",
        )
        assert "minAccuracy" in held["message"], held
        decided = models.status("acc").get("lastDecision")

        def waits() -> None:
            status = models.status("acc")
            assert (status.get("canary") or {}).get("step") == 0, status.get("canary")
            assert status["revisions"]["stable"]["revision"] == right
            assert status.get("lastDecision") == decided, status.get("lastDecision")

        holds_for(waits, seconds=3 * INTERVAL)
    finally:
        outcomes = load.stop()
    sent = load.tally()
    print(f"answers: {dict(outcomes.by_revision)}; labels: {dict(sent.labelled)}")
    assert outcomes.failures == [] and sent.refused == [], (outcomes.failures[:5], sent.refused)
