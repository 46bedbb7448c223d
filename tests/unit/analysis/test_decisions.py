"""Interval verdicts from check results, and the rollout's move across sequences of intervals."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from modelship.analysis import checks
from modelship.analysis.checks import CheckResult, IntervalVerdict, Policy, StepState


def ok(name: str = "maxP99LatencyMs") -> CheckResult:
    return CheckResult(name, "Pass", "p99 80 ms <= 100 ms (500 requests)")


def bad(name: str = "maxP99LatencyMs") -> CheckResult:
    return CheckResult(name, "Fail", "p99 180 ms > 100 ms (500 requests)")


def unsure(name: str, cause: checks.Cause, reason: str) -> CheckResult:
    return CheckResult(name, "Inconclusive", reason, cause=cause)


FEW_LABELS = unsure("minAccuracy", "too-few-samples", "12 labels < 100 needed")
NO_DATA = unsure("maxErrorRate", "no-data", "no data: error ratio")
QUERY_ERROR = unsure("custom", "query-error", "query error: timeout")
NOISE = unsure(
    "maxErrorRateIncreaseVsStable",
    "undecided",
    "error ratio 3% (3 of 100) vs stable 1% (1 of 100): 2 points > 0.5 points, "
    "but not significantly: p=0.27 >= 0.05",
)


# --- judge_interval ---------------------------------------------------------------------


def test_all_passing_checks_pass() -> None:
    verdict = checks.judge_interval([ok(), ok("minAccuracy")])
    assert (verdict.verdict, verdict.reason) == ("Pass", "all 2 checks passed")
    assert not verdict.evidence_missing


def test_no_checks_pass() -> None:
    verdict = checks.judge_interval([])
    assert (verdict.verdict, verdict.reason) == ("Pass", "no checks configured")


def test_any_fail_fails_even_beside_missing_data() -> None:
    verdict = checks.judge_interval([ok(), NO_DATA, bad(), bad("custom")])
    assert verdict.verdict == "Fail"
    assert verdict.failed == ("maxP99LatencyMs", "custom")
    assert verdict.reason == (
        "maxP99LatencyMs: p99 180 ms > 100 ms (500 requests); "
        "custom: p99 180 ms > 100 ms (500 requests)"
    )
    assert verdict.no_data == 1


def test_inconclusive_names_every_inconclusive_check_and_its_samples() -> None:
    verdict = checks.judge_interval([ok(), FEW_LABELS, NO_DATA, QUERY_ERROR, NOISE])
    assert verdict.verdict == "Inconclusive"
    assert verdict.inconclusive == (
        "minAccuracy",
        "maxErrorRate",
        "custom",
        "maxErrorRateIncreaseVsStable",
    )
    assert (verdict.no_data, verdict.query_errors, verdict.too_few_samples) == (1, 1, 1)
    assert verdict.undecided == 1
    assert verdict.reason == (
        "4 of 5 checks inconclusive (1 no data, 1 query error, 1 too few samples, 1 undecided): "
        "minAccuracy: 12 labels < 100 needed; maxErrorRate: no data: error ratio; "
        "custom: query error: timeout; maxErrorRateIncreaseVsStable: error ratio 3% (3 of 100) "
        "vs stable 1% (1 of 100): 2 points > 0.5 points, but not significantly: p=0.27 >= 0.05"
    )
    assert verdict.evidence_missing


@pytest.mark.parametrize(
    ("results", "missing"),
    [
        ([NOISE], False),
        ([NOISE, FEW_LABELS], True),
        ([NO_DATA], True),
        ([QUERY_ERROR, ok()], True),
    ],
)
def test_evidence_missing(results: list[CheckResult], missing: bool) -> None:
    assert checks.judge_interval(results).evidence_missing is missing


def test_query_errors_are_counted_apart_from_no_data() -> None:
    verdict = checks.judge_interval([QUERY_ERROR, QUERY_ERROR])
    assert (verdict.query_errors, verdict.no_data) == (2, 0)
    assert verdict.reason.startswith("2 of 2 checks inconclusive (2 query errors): ")


# --- decide -----------------------------------------------------------------------------

PASS = checks.judge_interval([ok()])
FAIL = checks.judge_interval([bad()])
UNDECIDED = checks.judge_interval([ok(), NOISE])  # enough data, not settled
MISSING = checks.judge_interval([ok(), NO_DATA])
FEW = checks.judge_interval([FEW_LABELS])
ERRORED = checks.judge_interval([QUERY_ERROR])

LABELS = {
    "P": PASS,
    "F": FAIL,
    "I": UNDECIDED,
    "M": MISSING,
    "S": FEW,
    "E": ERRORED,
}


def run(
    sequence: str, *, steps: int = 4, step: int = 0, **policy: object
) -> list[checks.StepDecision]:
    """Feed intervals (letters of LABELS) through decide, persisting the state between them."""
    state = StepState(step=step, steps=steps)
    rules = Policy(**policy)  # type: ignore[arg-type]
    decisions = []
    for letter in sequence:
        decision = checks.decide(state, LABELS[letter], rules)
        decisions.append(decision)
        state = decision.state
    return decisions


def actions(decisions: Sequence[checks.StepDecision]) -> list[str]:
    return [d.action for d in decisions]


@pytest.mark.parametrize(
    ("sequence", "policy", "expected"),
    [
        ("P", {}, ["Advance"]),
        ("PPPP", {}, ["Advance", "Advance", "Advance", "Promote"]),
        ("FPF", {"failure_limit": 2}, ["Continue", "Advance", "RollBack"]),
        ("FF", {"failure_limit": 2}, ["Continue", "RollBack"]),
        ("F", {"failure_limit": 1}, ["RollBack"]),
        ("FPFPF", {"failure_limit": 3}, ["Continue", "Advance", "Continue", "Advance", "RollBack"]),
        ("III", {"inconclusive_limit": 3}, ["Continue", "Continue", "Pause"]),
        ("MMM", {"inconclusive_limit": 3}, ["Continue", "Continue", "Pause"]),
        ("III", {"inconclusive_limit": 3, "on_inconclusive": "rollback"},
         ["Continue", "Continue", "RollBack"]),
        # Missing data in the run: never a rollback, whatever onInconclusive says.
        ("IMI", {"inconclusive_limit": 3, "on_inconclusive": "rollback"},
         ["Continue", "Continue", "Pause"]),
        ("SSS", {"inconclusive_limit": 3, "on_inconclusive": "rollback"},
         ["Continue", "Continue", "Pause"]),
        ("EEE", {"inconclusive_limit": 3, "on_inconclusive": "rollback"},
         ["Continue", "Continue", "Pause"]),
        # A Pass or a Fail ends a run of inconclusive intervals.
        ("IIPII", {"inconclusive_limit": 3}, ["Continue", "Continue", "Advance", "Continue",
                                              "Continue"]),
        ("IIFII", {"inconclusive_limit": 3, "failure_limit": 5},
         ["Continue", "Continue", "Continue", "Continue", "Continue"]),
        ("IIPIII", {"inconclusive_limit": 3}, ["Continue", "Continue", "Advance", "Continue",
                                               "Continue", "Pause"]),
        # Inconclusive intervals do not forgive failures.
        ("FIF", {"failure_limit": 2}, ["Continue", "Continue", "RollBack"]),
    ],
)  # fmt: skip
def test_sequences(sequence: str, policy: dict[str, Any], expected: list[str]) -> None:
    assert actions(run(sequence, **policy)) == expected


def test_inconclusive_never_promotes_on_the_last_step() -> None:
    for letter in "IMSE":
        decisions = run(letter * 10, steps=4, step=3, inconclusive_limit=20)
        assert set(actions(decisions)) == {"Continue"}
    assert actions(run("IP", steps=4, step=3)) == ["Continue", "Promote"]


@pytest.mark.parametrize("on_inconclusive", ["pause", "rollback"])
@pytest.mark.parametrize("last", [False, True])
def test_missing_data_never_promotes_and_never_rolls_back(on_inconclusive: str, last: bool) -> None:
    # Every sequence of up to 5 intervals mixing undecided ones with ones that lack data: no
    # decision taken on an interval that lacked data moves traffic.
    for length in range(1, 6):
        for sequence in itertools.product("IMSE", repeat=length):
            decisions = run(
                "".join(sequence),
                step=3 if last else 0,
                inconclusive_limit=2,
                on_inconclusive=on_inconclusive,
            )
            for letter, decision in zip(sequence, decisions, strict=True):
                assert decision.action != "Promote"
                if letter != "I":
                    assert decision.action in {"Continue", "Pause"}, sequence


def test_advance_moves_to_the_next_step_and_clears_the_run() -> None:
    (_, _, decision) = run("IIP", steps=3, inconclusive_limit=5)
    assert decision.action == "Advance"
    assert decision.state == StepState(step=1, steps=3)
    assert decision.reason == "step 1 of 3 passed (all 1 checks passed): advancing to step 2"


def test_promote_after_the_last_step() -> None:
    (decision,) = run("P", steps=3, step=2)
    assert (decision.action, decision.verdict) == ("Promote", "Pass")
    assert decision.reason == "step 3 of 3 passed (all 1 checks passed): promoting"
    assert decision.state.step == 2


def test_rollback_carries_the_figures_behind_it() -> None:
    (first, second, third) = run("FPF", failure_limit=2)
    assert first.reason == (
        "maxP99LatencyMs: p99 180 ms > 100 ms (500 requests) (1 of 2 failed intervals): "
        "holding step 1 of 4"
    )
    # Advancing does not forgive the failure: it counts towards the limit at the next step.
    assert second.state == StepState(step=1, steps=4, failures=1)
    assert third.action == "RollBack"
    assert third.reason == (
        "maxP99LatencyMs: p99 180 ms > 100 ms (500 requests) (2 of 2 failed intervals): "
        "rolling back"
    )
    assert third.state.failures == 2
    assert (third.failure_limit, third.inconclusive_limit) == (2, 3)


def test_pause_says_why_it_did_not_roll_back() -> None:
    decisions = run("IMI", inconclusive_limit=3, on_inconclusive="rollback")
    last = decisions[-1]
    assert last.action == "Pause"
    assert (last.state.inconclusive, last.state.missing_data) == (3, 1)
    assert last.reason.endswith(
        "(3 of 3 inconclusive intervals; not rolling back: 1 of them lacked data): "
        "pausing at step 1 of 4"
    )


def test_pause_by_policy() -> None:
    last = run("III", inconclusive_limit=3)[-1]
    assert last.reason.endswith("(3 of 3 inconclusive intervals): pausing at step 1 of 4")


def test_hold_says_how_close_the_limit_is() -> None:
    (decision,) = run("M", inconclusive_limit=3)
    assert decision.action == "Continue"
    assert decision.reason == (
        "1 of 2 checks inconclusive (1 no data): maxErrorRate: no data: error ratio "
        "(1 of 3 inconclusive intervals): holding step 1 of 4"
    )


def test_decide_is_pure() -> None:
    state = StepState(step=1, steps=4, failures=1)
    first = checks.decide(state, FAIL, Policy(failure_limit=3))
    again = checks.decide(state, FAIL, Policy(failure_limit=3))
    assert first == again
    assert state == StepState(step=1, steps=4, failures=1)


@pytest.mark.parametrize(("step", "steps"), [(-1, 4), (4, 4), (0, 0)])
def test_step_state_refuses_a_step_outside_the_rollout(step: int, steps: int) -> None:
    with pytest.raises(ValueError):
        StepState(step=step, steps=steps)


def test_interval_verdict_is_the_input_not_recomputed() -> None:
    # decide trusts the verdict it is given (judge_interval's), including its reason.
    verdict = IntervalVerdict("Fail", "custom reason", ())
    (decision,) = [checks.decide(StepState(0, 2), verdict, Policy(failure_limit=1))]
    assert decision.reason == "custom reason (1 of 1 failed intervals): rolling back"
