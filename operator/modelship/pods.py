"""What a revision's pods report, in words an SRE acts on (pure): why they are not ready, and
whether one is stuck before its containers start."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from modelship.timestamps import parse_time

# Waiting reasons that explain themselves; "ContainerCreating" and "PodInitializing" only say
# the pod has not got far yet.
_TELLING_WAITS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
MESSAGE_TAIL = 300


def selected(pods: Sequence[dict[str, Any]], selector: dict[str, str]) -> list[dict[str, Any]]:
    """The pods whose labels match every label of `selector`."""
    wanted = selector.items()
    return [p for p in pods if wanted <= ((p.get("metadata") or {}).get("labels") or {}).items()]


def describe(pods: Sequence[dict[str, Any]]) -> str:
    """One line naming the state of each distinct problem among the pods, e.g.
    `container server: CrashLoopBackOff, last exit OOMKilled (code 137)`; empty when none says
    anything."""
    seen: list[str] = []
    for pod in pods:
        for line in _pod_problems(pod):
            if line not in seen:
                seen.append(line)
    return "; ".join(seen)


def _pod_problems(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    found: list[str] = []
    for kind, key in (
        ("init container", "initContainerStatuses"),
        ("container", "containerStatuses"),
    ):
        for cs in status.get(key) or []:
            line = _container_problem(cs)
            if line:
                found.append(f"{kind} {cs.get('name', '?')}: {line}")
    if found:
        return found
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return [f"unschedulable: {cond.get('message') or cond.get('reason', '')}".strip()]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            running = all(
                "running" in (cs.get("state") or {}) for cs in status.get("containerStatuses") or []
            )
            if running and status.get("containerStatuses"):
                return ["running but not ready (readiness probe failing)"]
    return []


def _container_problem(cs: dict[str, Any]) -> str:
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    parts: list[str] = []
    if waiting.get("reason") in _TELLING_WAITS:
        parts.append(str(waiting["reason"]))
        if waiting["reason"] != "CrashLoopBackOff" and waiting.get("message"):
            parts[-1] += f" ({_tail(waiting['message'])})"
    if terminated and terminated.get("reason") != "Completed":
        parts.append(_exit("exited", terminated))
    elif last and (parts or not state.get("running")) and last.get("reason") != "Completed":
        parts.append(_exit("last exit", last))
    return ", ".join(parts)


def _exit(prefix: str, terminated: dict[str, Any]) -> str:
    text = f"{prefix} {terminated.get('reason', 'Error')} (code {terminated.get('exitCode', '?')})"
    if terminated.get("message"):
        text += f": {_tail(terminated['message'])}"
    return text


def _tail(message: str) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= MESSAGE_TAIL else "…" + message[-MESSAGE_TAIL:]


def stuck_before_start(
    pods: Sequence[dict[str, Any]], now: datetime.datetime, after_seconds: float
) -> tuple[bool, float | None]:
    """Whether a scheduled pod has started no container for `after_seconds` (what a missing
    volume source, the feedback-key Secret deleted, looks like from the pod's status), and else
    the seconds until a pod that has not started yet would count as stuck."""
    recheck: float | None = None
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        scheduled = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "True"
            ),
            None,
        )
        if scheduled is None or not scheduled.get("lastTransitionTime"):
            continue
        statuses = (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        )
        started = any(
            "running" in (cs.get("state") or {}) or cs.get("lastState") for cs in statuses
        )
        since = parse_time(scheduled["lastTransitionTime"])
        if started:
            continue
        left = after_seconds - (now - since).total_seconds()
        if left <= 0:
            return True, None
        recheck = left if recheck is None else min(recheck, left)
    return False, recheck
