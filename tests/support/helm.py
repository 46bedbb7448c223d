"""Helm's own command (built from the module proxy by hack/build-go-tool.sh) on charts/modelship."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support import go_tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelship"


def helm(
    *args: str, kubeconfig: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Runs helm; the caller asserts on the result (a failure's stderr is part of it)."""
    command = [str(go_tools.binary("helm")), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", kubeconfig]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def template(
    *settings: str,
    release: str = "modelship",
    namespace: str = "modelship-system",
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """The objects `helm template` renders for these `--set` settings (`helm install` without
    a cluster); fails the test with helm's message when rendering fails."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for setting in settings:
        args += ["--set", setting]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
