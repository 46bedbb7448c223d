"""What pods report, in words: a table of pod statuses as the kubelet writes them."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from modelship import pods
from modelship.timestamps import format_time

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def pod(
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "status": {
            "phase": phase,
            "containerStatuses": containers or [],
            "initContainerStatuses": init or [],
            "conditions": conditions or [],
        },
    }


OOM_LOOP = {
    "name": "server",
    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}},
    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
}
PULL = {
    "name": "server",
    "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling "x/y:1"'}},
}
CRASHED = {
    "name": "fetch",
    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
    "lastState": {
        "terminated": {"reason": "Error", "exitCode": 2, "message": "no such key: s3://m/v1/"}
    },
}
STARTING = {"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}
RUNNING = {"name": "server", "state": {"running": {}}, "ready": False}
NOT_READY = [{"type": "Ready", "status": "False"}]


@pytest.mark.parametrize(
    ("pods_", "expected"),
    [
        ([], ""),
        ([pod([OOM_LOOP])], "container server: CrashLoopBackOff, last exit OOMKilled (code 137)"),
        ([pod([PULL])], 'container server: ImagePullBackOff (Back-off pulling "x/y:1")'),
        (
            [pod([STARTING], init=[CRASHED], phase="Pending")],
            "init container fetch: CrashLoopBackOff, last exit Error (code 2): "
            "no such key: s3://m/v1/",
        ),
        ([pod([RUNNING], conditions=NOT_READY)], "running but not ready (readiness probe failing)"),
        # Nothing telling yet: a pod still being created says nothing.
        ([pod([STARTING], phase="Pending")], ""),
        (
            [
                pod(
                    phase="Pending",
                    conditions=[
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "message": "0/1 nodes: Insufficient memory",
                        }
                    ],
                )
            ],
            "unschedulable: 0/1 nodes: Insufficient memory",
        ),
        # Two pods with the same trouble are told once.
        (
            [pod([OOM_LOOP]), pod([OOM_LOOP])],
            "container server: CrashLoopBackOff, last exit OOMKilled (code 137)",
        ),
    ],
    ids=[
        "none",
        "oom",
        "image",
        "init-crash",
        "probe",
        "creating",
        "unschedulable",
        "deduplicated",
    ],
)
def test_describe(pods_: list[dict[str, Any]], expected: str) -> None:
    assert pods.describe(pods_) == expected


def scheduled(seconds_ago: int, statuses: list[dict[str, Any]]) -> dict[str, Any]:
    at = format_time(NOW - datetime.timedelta(seconds=seconds_ago))
    return pod(
        statuses,
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": at}],
    )


@pytest.mark.parametrize(
    ("pods_", "expected"),
    [
        ([], (False, None)),
        ([scheduled(3, [STARTING])], (False, 7.0)),
        ([scheduled(10, [STARTING])], (True, None)),
        # A pod whose containers ran (and crash) is not stuck before starting.
        ([scheduled(60, [OOM_LOOP])], (False, None)),
        ([pod([RUNNING])], (False, None)),
    ],
    ids=["none", "young", "stuck", "crashing", "running"],
)
def test_stuck_before_start(
    pods_: list[dict[str, Any]], expected: tuple[bool, float | None]
) -> None:
    assert pods.stuck_before_start(pods_, NOW, 10.0) == expected
