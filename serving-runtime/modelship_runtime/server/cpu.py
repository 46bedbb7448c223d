"""How many CPUs this process may really use: cgroup CPU quota (v1 or v2) and affinity."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """Return (v2 path, v1 cpu controller path) of this process from /proc/self/cgroup."""
    text = _read(proc_cgroup) or ""
    v2: str | None = None
    v1: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _quota_v2(text: str | None) -> float | None:
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota_text: str | None, period_text: str | None) -> float | None:
    try:
        quota = int(quota_text or "-1")
        period = int(period_text or "0")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path | None = None) -> float | None:
    """The CPU quota in cores, or None when unlimited. Looks at our own cgroup, then the root.

    Inside a container the cgroup namespace makes the root files our own; on a host the
    process's cgroup path from /proc/self/cgroup names them.
    """
    v2_path, v1_path = _own_cgroup_paths(proc_cgroup or Path("/proc/self/cgroup"))
    candidates_v2 = [root / v2_path.lstrip("/")] if v2_path else []
    candidates_v2.append(root)
    for directory in candidates_v2:
        limit = _quota_v2(_read(directory / "cpu.max"))
        if limit is not None:
            return limit
    v1_dirs: list[Path] = []
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / controller
        if v1_path:
            v1_dirs.append(base / v1_path.lstrip("/"))
        v1_dirs.append(base)
    for directory in v1_dirs:
        limit = _quota_v1(
            _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        )
        if limit is not None:
            return limit
    return None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path | None = None) -> int:
    """Whole CPUs to use for compute threads: quota rounded up, capped by the affinity mask."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(limit)))
