"""Argo CD's verdict on objects: a health.lua run by Argo CD's own Lua VM (the small Go program
hack/argocd-health, built and cached by hack/build-go-tool.sh)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import go_tools


def verdicts(script: Path, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One {"status", "message"} (or {"error"}) per object, in order."""
    result = subprocess.run(
        [str(go_tools.binary("argocd-health")), str(script)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]
