"""CPU limit detection from cgroup v1 and v2 files laid out in a temporary tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modelship_runtime.server.cpu import available_cpus, cgroup_cpu_limit


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def proc_cgroup(tmp_path: Path) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text("")
    return path


def test_v2_quota_in_our_own_cgroup(tmp_path: Path) -> None:
    _write(tmp_path / "cg" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cg" / "kubepods" / "pod1" / "cpu.max", "150000 100000\n")
    proc = tmp_path / "proc"
    proc.write_text("0::/kubepods/pod1\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc) == 1.5


def test_v2_unlimited_is_none(tmp_path: Path, proc_cgroup: Path) -> None:
    _write(tmp_path / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup) is None


def test_v1_quota_and_period(tmp_path: Path, proc_cgroup: Path) -> None:
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "50000\n")
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup) == 0.5


def test_v1_combined_controller_directory(tmp_path: Path) -> None:
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "300000")
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000")
    proc = tmp_path / "proc"
    proc.write_text("4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    assert cgroup_cpu_limit(tmp_path, proc) == 3.0


def test_v1_unlimited_is_none(tmp_path: Path, proc_cgroup: Path) -> None:
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1")
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup) is None


def test_threads_round_the_quota_up_and_respect_affinity(tmp_path: Path, proc_cgroup: Path) -> None:
    _write(tmp_path / "cpu.max", "50000 100000")
    assert available_cpus(tmp_path, proc_cgroup) == 1  # half a core still needs one thread
    _write(tmp_path / "cpu.max", "6400000 100000")  # 64 cores of quota, far above the mask
    assert available_cpus(tmp_path, proc_cgroup) == len(os.sched_getaffinity(0))


def test_garbage_files_are_ignored(tmp_path: Path, proc_cgroup: Path) -> None:
    _write(tmp_path / "cpu.max", "lots\n")
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "abc")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup) is None
