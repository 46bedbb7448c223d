"""The cluster under test: started on demand, reused when running, stopped if started here."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster.sh"
DEFAULT_KUBECONFIG = REPO / ".cluster" / "kubeconfig"


@functools.cache
def kubectl() -> str:
    """Our own kubectl, built with the cluster (hack/versions.sh names its cache directory).

    Whatever `kubectl` happens to be on PATH may be another version or a cloud SDK's wrapper.
    """
    result = subprocess.run(
        ["bash", "-c", f'source {REPO / "hack" / "versions.sh"} && echo "$K8S_BIN/kubectl"'],
        capture_output=True,
        text=True,
        check=True,
    )
    path = result.stdout.strip()
    if not Path(path).is_file():
        raise RuntimeError(f"{path} is missing: run 'make binaries'")
    return path


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    started_here: bool


def _running() -> bool:
    """True when our apiserver process is alive, whatever the health of the rest."""
    pid_file = REPO / ".cluster" / "run" / "kube-apiserver.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def acquire() -> Cluster:
    """Returns a cluster to test against, starting the local one only when none runs.

    A cluster found running belongs to someone else (a developer, `make demo`):
    it is repaired by an idempotent `up` but never stopped by the tests.
    """
    external = os.environ.get("MODELSHIP_TEST_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            raise RuntimeError(f"MODELSHIP_TEST_KUBECONFIG={external} is not a file")
        return Cluster(kubeconfig=external, started_here=False)
    found_running = _running()
    # Output goes straight to the terminal so a cold start shows its progress.
    result = subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"'hack/cluster.sh up' failed with exit {result.returncode}; logs in .cluster/logs/"
        )
    return Cluster(kubeconfig=str(DEFAULT_KUBECONFIG), started_here=not found_running)


def release(cluster: Cluster) -> None:
    """Stops the cluster only if this test session started it."""
    if cluster.started_here:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], check=False)
