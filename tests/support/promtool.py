"""The promtool the tests run: the Prometheus that hack/ builds and caches, never one on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def prometheus_bin() -> Path:
    """The directory hack/versions.sh names for the Prometheus build (it may not exist yet)."""
    out = subprocess.run(
        ["bash", "-c", 'source hack/versions.sh && printf %s "$PROMETHEUS_BIN"'],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout)


def promtool() -> Path:
    """The cached promtool; fails (never skips) the test when it has not been built."""
    path = prometheus_bin() / "promtool"
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: run `make binaries` to build Prometheus (and its promtool) "
            "into the cache; the alert rules are only tested against the Prometheus the "
            "cluster runs.",
            pytrace=False,
        )
    return path


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run promtool with arguments in a directory (test files name rule files relative to it)."""
    return subprocess.run(
        [str(promtool()), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
