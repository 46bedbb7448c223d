"""The canary state machine, transition by transition: steps, pods per revision under the
replicas router, pause and resume, promote, abort, and resuming after a crash."""

from __future__ import annotations

import datetime

import pytest
from modelship import api, rollout
from modelship.analysis import checks
from modelship.rollout import Pods
from modelship.scaling import report
from modelship.timestamps import format_time

from .conftest import make_md

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
MD = make_md(
    {
        "model": {"uri": "s3://m/model.onnx"},
        "replicas": 4,
        "rollout": {"steps": [25, 50, 100], "interval": "10s"},
    }
)
PAUSED = make_md(
    {
        "model": {"uri": "s3://m/model.onnx"},
        "replicas": 4,
        "rollout": {"steps": [25, 50, 100], "interval": "10s", "paused": True},
    }
)
STABLE4 = Pods(wanted=4, ready=4, rolled_out=True)
STABLE3 = Pods(wanted=3, ready=3, rolled_out=True)


def ago(seconds: int) -> str:
    return format_time(NOW - datetime.timedelta(seconds=seconds))


def at_step(
    index: int, started: str | None, pods: tuple[int, int], paused: bool = False
) -> api.Canary:
    weight = [25, 50, 100][index]
    return api.Canary(
        revision="new",
        step=index,
        weight=weight,
        step_started_at=started,
        canary_replicas=pods[0],
        stable_replicas=pods[1],
        paused=paused,
    )


def run(
    prior: api.Canary | None,
    canary: Pods | None,
    stable: Pods,
    action: rollout.Action | None = None,
    md: api.ModelDeployment = MD,
) -> rollout.Step:
    return rollout.step(
        md.spec, "new", "old", prior, canary=canary, stable=stable, action=action, now=NOW
    )


def test_the_first_step_brings_one_canary_pod_before_the_stable_shrinks() -> None:
    first = run(None, None, STABLE4)
    assert (first.canary_replicas, first.stable_replicas, first.route) == (1, 4, "both")
    assert first.canary == at_step(0, None, (1, 3)) and first.decision is None
    # The canary pod is ready: now the stable gives one up.
    ready = run(first.canary, Pods(1, 1, True), STABLE4)
    assert (ready.canary_replicas, ready.stable_replicas) == (1, 3)
    assert ready.canary is not None and ready.canary.step_started_at is None
    # Both in place: the step's interval starts, and the operator comes back when it ends.
    settled = run(ready.canary, Pods(1, 1, True), STABLE3)
    assert settled.canary == at_step(0, ago(0), (1, 3)) and settled.requeue_after == 10.0


def test_a_step_advances_after_its_interval() -> None:
    running = run(at_step(0, ago(4), (1, 3)), Pods(1, 1, True), STABLE3)
    assert running.requeue_after == 6.0 and running.decision is None
    done = run(at_step(0, ago(10), (1, 3)), Pods(1, 1, True), STABLE3)
    assert done.decision is not None and done.decision.action == "StepAdvanced"
    assert (
        "step 1/3 (weight 25%)" in done.decision.reason
        and "step 2 (weight 50%)" in done.decision.reason
    )
    assert done.canary == at_step(1, None, (2, 2)) and done.requeue_after == 0.0
    assert (done.canary_replicas, done.stable_replicas) == (2, 3)


def test_the_last_step_promotes_once_every_canary_pod_is_ready() -> None:
    last = at_step(2, None, (4, 2))
    rising = run(last, Pods(4, 3, False), Pods(2, 2, True))
    assert (rising.route, rising.canary_replicas, rising.stable_replicas) == ("both", 4, 2)
    assert rising.outcome is None
    promoted = run(last, Pods(4, 4, True), Pods(2, 2, True))
    assert promoted.route == "canary" and promoted.outcome == "promoted"
    assert promoted.canary is None
    assert promoted.decision is not None and promoted.decision.action == "Promoted"
    assert "revision new promoted after 3 steps: 4/4 replicas ready" in promoted.decision.reason


def test_pause_holds_the_step_and_resume_runs_it_again() -> None:
    running = at_step(0, ago(8), (1, 3))
    paused = run(running, Pods(1, 1, True), STABLE3, md=PAUSED)
    assert paused.decision is not None and paused.decision.action == "Paused"
    assert paused.canary is not None and paused.canary.paused and paused.requeue_after is None
    # Held over many intervals: no decision, no step.
    later = run(paused.canary, Pods(1, 1, True), STABLE3, md=PAUSED)
    assert later.decision is None and later.canary == paused.canary
    resumed = run(paused.canary, Pods(1, 1, True), STABLE3)
    assert resumed.decision is not None and resumed.decision.action == "Resumed"
    assert resumed.canary == at_step(0, ago(0), (1, 3)) and resumed.requeue_after == 10.0


def test_abort_sends_every_request_back_to_the_stable() -> None:
    aborted = run(at_step(1, ago(3), (2, 2)), Pods(2, 2, True), Pods(2, 2, True), action="abort")
    assert (aborted.route, aborted.canary_replicas, aborted.stable_replicas) == ("stable", 0, 4)
    assert aborted.outcome == "rolled_back" and aborted.canary is None
    assert aborted.decision is not None and aborted.decision.action == "RolledBack"
    assert "at step 2/3 (weight 50%)" in aborted.decision.reason


def test_promote_by_hand_jumps_to_the_last_step() -> None:
    jumped = run(at_step(0, ago(3), (1, 3)), Pods(1, 1, True), STABLE3, action="promote")
    assert jumped.canary is not None and jumped.canary.step == 2 and jumped.canary_replicas == 4
    assert jumped.decision is not None and "promote annotation" in jumped.decision.reason


def test_an_operator_restarted_mid_step_resumes_it_with_the_time_left() -> None:
    resumed = run(at_step(1, ago(7), (2, 2)), Pods(2, 2, True), Pods(2, 2, True))
    assert resumed.canary == at_step(1, ago(7), (2, 2))
    assert resumed.requeue_after == 3.0 and resumed.decision is None


def test_a_new_revision_mid_canary_starts_over() -> None:
    other = at_step(1, ago(7), (2, 2)).model_copy(update={"revision": "older"})
    fresh = run(other, None, Pods(2, 2, True))
    assert fresh.canary is not None and fresh.canary.step == 0 and fresh.canary.revision == "new"


@pytest.mark.parametrize(
    ("annotations", "action", "error"),
    [
        ({}, None, False),
        ({rollout.ACTION_ANNOTATION: "promote"}, "promote", False),
        ({rollout.ACTION_ANNOTATION: " Abort "}, "abort", False),
        ({rollout.ACTION_ANNOTATION: "retry"}, "retry", False),
        ({rollout.ACTION_ANNOTATION: "rollback"}, None, True),
    ],
)
def test_parse_action(annotations: dict[str, str], action: str | None, error: bool) -> None:
    found, problem = rollout.parse_action(annotations)
    assert found == action and (problem is not None) == error
    if problem:
        assert "'rollback' is not an action (promote, abort or retry)" in problem


ANALYSED = make_md(
    {
        "model": {"uri": "s3://m/model.onnx"},
        "replicas": 4,
        "rollout": {
            "steps": [25, 50, 100],
            "interval": "10s",
            "analysis": {"maxErrorRate": 0.01, "failureLimit": 2, "inconclusiveLimit": 2},
        },
    }
)


def interval(verdict: checks.Verdict, reason: str = "r") -> checks.IntervalVerdict:
    cause: checks.Cause | None = "no-data" if verdict == "Inconclusive" else None
    result = checks.CheckResult(
        name="maxErrorRate", verdict=verdict, reason=reason, value=0.5, threshold=0.01, cause=cause
    )
    return checks.judge_interval([result])


def analysed(prior: api.Canary, measured: checks.IntervalVerdict | None) -> rollout.Step:
    return rollout.step(
        ANALYSED.spec,
        "new",
        "old",
        prior,
        canary=Pods(1, 1, True),
        stable=STABLE3,
        action=None,
        now=NOW,
        measured=measured,
    )


def test_a_step_with_analysis_advances_only_on_a_pass() -> None:
    due = at_step(0, ago(10), (1, 3))
    assert rollout.analysis_due(ANALYSED.spec, due, NOW)
    assert not rollout.analysis_due(ANALYSED.spec, at_step(0, ago(9), (1, 3)), NOW)
    assert not rollout.analysis_due(MD.spec, due, NOW)  # no analysis: time alone decides
    waiting = analysed(due, None)
    assert waiting.decision is None and waiting.requeue_after == 1.0
    passed = analysed(due, interval("Pass", "error ratio 0% (0 of 300 requests) <= 1%"))
    assert passed.decision is not None and passed.decision.action == "StepAdvanced"
    assert "passed its analysis" in passed.decision.reason
    assert passed.canary is not None and passed.canary.step == 1


def test_failed_intervals_roll_back_at_the_failure_limit() -> None:
    first = analysed(at_step(0, ago(10), (1, 3)), interval("Fail", "error ratio 50% > 1%"))
    assert first.outcome is None and first.canary is not None
    assert first.canary.failures == 1 and first.canary.step_started_at == ago(0)
    (check,) = first.canary.analysis
    assert (check.name, check.verdict, check.value, check.threshold) == (
        "maxErrorRate",
        "Fail",
        0.5,
        0.01,
    )
    again = first.canary.model_copy(update={"step_started_at": ago(10)})
    second = analysed(again, interval("Fail", "error ratio 50% > 1%"))
    assert second.outcome == "rolled_back" and second.route == "stable"
    assert second.decision is not None and second.decision.action == "RolledBack"
    assert "2 of 2 failed intervals" in second.decision.reason
    assert "error ratio 50% > 1%" in second.decision.reason


def test_missing_data_holds_then_pauses_and_never_rolls_back() -> None:
    first = analysed(at_step(0, ago(10), (1, 3)), interval("Inconclusive", "no data"))
    assert first.outcome is None and first.canary is not None
    assert first.canary.inconclusive == 1 and first.canary.missing_data == 1
    assert first.decision is None and first.canary.step == 0
    again = first.canary.model_copy(update={"step_started_at": ago(10)})
    second = analysed(again, interval("Inconclusive", "no data"))
    assert second.outcome is None and second.canary is not None
    assert second.canary.held_by_analysis and second.requeue_after is None
    assert second.decision is not None and second.decision.action == "Paused"
    # Held: time passing changes nothing; the promote annotation ends it.
    assert not rollout.analysis_due(ANALYSED.spec, second.canary, NOW)
    promoted = rollout.step(
        ANALYSED.spec,
        "new",
        "old",
        second.canary,
        canary=Pods(1, 1, True),
        stable=STABLE3,
        action="promote",
        now=NOW,
    )
    assert promoted.canary is not None and promoted.canary.step == 2


@pytest.mark.parametrize(
    ("desired", "weight_index", "split"),
    [
        pytest.param(8, 0, (2, 6), id="25% of the autoscaler's 8"),
        pytest.param(2, 0, (1, 1), id="a canary keeps one pod however few the total"),
        pytest.param(8, 1, (4, 4), id="50% of 8"),
    ],
)
def test_during_a_canary_the_autoscalers_count_is_shared_by_weight(
    desired: int, weight_index: int, split: tuple[int, int]
) -> None:
    autoscaled = make_md(
        {
            "model": {"uri": "s3://m/model.onnx"},
            "scaling": {"maxReplicas": 10, "targets": {"concurrencyPerReplica": 2}},
            "rollout": {"steps": [25, 50, 100], "interval": "10s"},
        }
    )
    decided = api.AutoscalingStatus(desired_replicas=desired, evaluated_at=ago(0))
    served = report.served(autoscaled, decided)
    canary, stable = split
    prior = at_step(weight_index, ago(1), (canary, stable))
    step = run(prior, Pods(canary, canary, True), Pods(stable, stable, True), md=served)
    assert step.canary is not None
    assert (step.canary.canary_replicas, step.canary.stable_replicas) == split
    assert (step.canary_replicas, step.stable_replicas) == split


# --- under the gatewayAPI router -------------------------------------------------------------

GATEWAY = make_md(
    {
        "model": {"uri": "s3://m/model.onnx"},
        "replicas": 4,
        "rollout": {
            "steps": [10, 50, 100],
            "interval": "10s",
            "trafficRouter": {"type": "gatewayAPI", "parentRefs": [{"name": "web"}]},
        },
    }
)


def on_gateway(prior: api.Canary | None, canary: Pods | None, routed: int | None) -> rollout.Step:
    return rollout.step(
        GATEWAY.spec,
        "new",
        "old",
        prior,
        canary=canary,
        stable=STABLE4,
        action=None,
        now=NOW,
        routed=routed,
    )


@pytest.mark.parametrize(
    ("weight", "pods"),
    [(10, (4, 1)), (25, (4, 1)), (50, (4, 2)), (60, (4, 3)), (100, (4, 4))],
)
def test_under_a_gateway_the_stable_keeps_its_size_and_the_canary_gets_its_share(
    weight: int, pods: tuple[int, int]
) -> None:
    assert rollout.pods_for(GATEWAY.spec, 4, weight) == pods


def test_under_a_gateway_the_weight_moves_with_ready_pods_and_the_clock_with_the_gateway() -> None:
    # Pods starting: the routes keep everything on the stable.
    starting = on_gateway(None, None, routed=0)
    assert (starting.traffic, starting.canary_replicas, starting.stable_replicas) == (0, 1, 4)
    assert starting.canary is not None and starting.canary.traffic_weight == 0
    # Pods ready: the routes give the canary its 10%, but the step's clock waits for the Gateway.
    ready = on_gateway(starting.canary, Pods(1, 1, True), routed=0)
    assert ready.traffic == 10 and ready.canary is not None
    assert ready.canary.step_started_at is None
    assert ready.requeue_after == rollout.ROUTE_POLL_SECONDS
    # The Gateway carries 10%: the interval begins.
    carried = on_gateway(ready.canary, Pods(1, 1, True), routed=10)
    assert carried.canary is not None and carried.canary.step_started_at == ago(0)
    assert carried.requeue_after == 10.0


def test_under_a_gateway_a_route_not_accepted_holds_the_step_and_looks_again_later() -> None:
    ready = on_gateway(at_step(0, None, (1, 4)), Pods(1, 1, True), routed=None)
    assert ready.canary is not None and ready.canary.step_started_at is None
    assert ready.decision is None and ready.requeue_after == rollout.ROUTE_RECHECK_SECONDS


def test_under_a_gateway_promotion_waits_until_the_gateway_carries_everything() -> None:
    last = api.Canary(revision="new", step=2, weight=100, canary_replicas=4, stable_replicas=4)
    last = last.model_copy(update={"traffic_weight": 50})
    rising = on_gateway(last, Pods(4, 3, False), routed=50)
    assert (rising.route, rising.traffic, rising.outcome) == ("both", 50, None)
    moving = on_gateway(last, Pods(4, 4, True), routed=50)
    assert (moving.route, moving.traffic, moving.outcome) == ("both", 100, None)
    refused = on_gateway(last, Pods(4, 4, True), routed=None)
    assert refused.outcome is None and refused.requeue_after == rollout.ROUTE_RECHECK_SECONDS
    promoted = on_gateway(last, Pods(4, 4, True), routed=100)
    assert (promoted.route, promoted.outcome) == ("canary", "promoted")


def test_under_a_gateway_abort_takes_the_canary_off_the_routes() -> None:
    aborted = rollout.step(
        GATEWAY.spec,
        "new",
        "old",
        at_step(1, ago(3), (2, 4)),
        canary=Pods(2, 2, True),
        stable=STABLE4,
        action="abort",
        now=NOW,
        routed=50,
    )
    assert (aborted.route, aborted.traffic, aborted.outcome) == ("stable", 0, "rolled_back")
