"""Rollout benchmark (`make bench-rollout`), not a test: `make test` never collects it (its name
is not test_*.py); it lives here for the operator suite's fixtures (a namespace, the CRD, the
operator as a process reading the cluster's Prometheus).

Under steady load through the model's Service (one request at a time, from this machine to the
ClusterIP), three canaries with the same analysis:

- an erroring canary (a model whose input signature breaks the clients' requests: HTTP 400),
- a slow canary (the same answers, ~0.1 s a request instead of ~2 ms),
- a good canary, promoted through its steps.

For the bad ones: time from the first bad answer the clients saw to the operator's RolledBack
decision, and to the last answer the canary gave (traffic back on stable), against the
documented bound (scrape interval + interval x failureLimit). For all: requests that failed
other than the bad canary's own answers, during the rollout and after its decision (must be 0).
The figures are printed as a Markdown table for docs/benchmarks.md, and written as JSON to
$MODELSHIP_BENCH_OUT (default /tmp/bench-rollout.json).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelship.timestamps import parse_time

from tests.support.load import Answer, SteadyLoad
from tests.support.onnx_models import SLOW_BUILD_RESOURCES, write_slow_linear_onnx
from tests.support.store import ObjectStore
from tests.support.waiting import wait_until

from .conftest import (
    Models,
    OperatorProcess,
    analysed_spec,
    model_file,
    ready_and_scraped,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

INTERVAL_S = 20
FAILURE_LIMIT = 1
SCRAPE_S = 5  # the local Prometheus scrapes every 5 s (scrapeInterval in hack/monitoring.sh)
BOUND_S = SCRAPE_S + INTERVAL_S * FAILURE_LIMIT
WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3)


@dataclass(frozen=True)
class Result:
    """One canary's rollout as the clients and the operator saw it."""

    scenario: str
    decision: str
    requests: int
    canary_answers: int
    bad_answers: int  # the canary's failed (erroring) or slow (slow) answers
    other_failures: int  # anything else that failed: lost requests
    first_bad_to_decision_s: float | None
    first_bad_to_last_canary_s: float | None
    bound_s: int
    canary_p50_ms: float | None
    stable_p50_ms: float | None


def _spec(uri: str) -> dict[str, Any]:
    return analysed_spec(
        uri,
        interval_s=INTERVAL_S,
        maxP99LatencyIncreaseVsStable=1.0,
        failureLimit=FAILURE_LIMIT,
    )


def _median_ms(answers: list[Answer]) -> float | None:
    return round(float(np.median([a.seconds for a in answers])) * 1000, 1) if answers else None


def _run(models: Models, scenario: str) -> Result:
    name = f"bench-{scenario}"
    models.create(name, _spec(model_file(models.namespace, f"{name}-a", 0.1)))
    stable = ready_and_scraped(models, name)
    service = models.core.read_namespaced_service(name, models.namespace)
    load = SteadyLoad(service.spec.cluster_ip, name).start()
    store = ObjectStore.from_endpoints()
    if scenario == "erroring":  # 5 inputs, clients send 4
        uri = store.upload_linear(models.namespace, f"{name}-b", np.ones((5, 3), dtype=np.float32))
    elif scenario == "slow":
        uri = store.upload_linear(
            models.namespace, f"{name}-b", WEIGHTS * 0.2, writer=write_slow_linear_onnx
        )
    else:
        uri = store.upload_linear(models.namespace, f"{name}-b", WEIGHTS * 0.2)
    wanted = "Promoted" if scenario == "good" else "RolledBack"
    try:
        resources = SLOW_BUILD_RESOURCES if scenario == "slow" else {}
        models.patch_spec(name, {"model": {"uri": uri}, "optimization": {"resources": resources}})
        canary = models.new_revision(name, stable, timeout=60)
        wait_until(
            lambda: (
                (models.status(name).get("lastDecision") or {}).get("action")
                in ("Promoted", "RolledBack")
            ),
            timeout=600,
            what=f"md/{name} decided",
        )
        decision = models.status(name)["lastDecision"]
        # The clients after the decision: a hundred answers from whichever revision now serves.
        serving = stable if decision["action"] == "RolledBack" else canary
        served = load.answered_by(serving)
        wait_until(lambda: load.answered_by(serving) >= served + 100, timeout=60, what="serving")
    finally:
        outcomes = load.stop()
    answers = outcomes.answers
    by_canary = [a for a in answers if a.revision == canary]
    by_stable = [a for a in answers if a.revision == stable]
    if scenario == "erroring":
        bad = [a for a in answers if a.failure is not None and "HTTP 400" in a.failure]
    elif scenario == "slow":
        bad = by_canary
    else:
        bad = []
    counted = {id(a) for a in bad}
    other = [a for a in answers if a.failure is not None and id(a) not in counted]
    decided = parse_time(decision["at"]).timestamp()
    first_bad = min((a.at for a in bad), default=None)
    last_canary = max((a.at + a.seconds for a in (bad or by_canary)), default=None)
    return Result(
        scenario=scenario,
        decision=decision["action"] + ("" if decision["action"] == wanted else " (unexpected)"),
        requests=len(answers),
        canary_answers=len(by_canary),
        bad_answers=len(bad),
        other_failures=len(other),
        first_bad_to_decision_s=round(decided - first_bad, 1) if first_bad else None,
        first_bad_to_last_canary_s=(
            round(last_canary - first_bad, 1) if first_bad and last_canary else None
        ),
        bound_s=BOUND_S,
        canary_p50_ms=_median_ms(by_canary),
        stable_p50_ms=_median_ms(by_stable),
    )


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}"


def test_bench_rollout(models: Models, analysing_operator: OperatorProcess) -> None:
    analysing_operator.start()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = [_run(models, scenario) for scenario in ("erroring", "slow", "good")]
    out = Path(os.environ.get("MODELSHIP_BENCH_OUT", "/tmp/bench-rollout.json"))
    out.write_text(
        json.dumps(
            {"date": started, "machine": _machine(), "results": [asdict(r) for r in results]}
        )
    )
    print(f"\n{started}, {_machine()}; interval {INTERVAL_S} s, failureLimit {FAILURE_LIMIT}")
    print(
        "| canary | decision | first bad answer → decision | → last canary answer | bound | "
        "requests | canary answers | bad answers | other failures | p50 canary / stable |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.scenario} | {r.decision} | {_s(r.first_bad_to_decision_s)} | "
            f"{_s(r.first_bad_to_last_canary_s)} | {r.bound_s} s | {r.requests} | "
            f"{r.canary_answers} | {r.bad_answers} | {r.other_failures} | "
            f"{r.canary_p50_ms or '—'} / {r.stable_p50_ms or '—'} ms |"
        )


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds} s"
