"""cli-utils' kstatus verdict on an object, as Flux and kstatus-based tools compute it (the small
Go program hack/kstatus, built and cached by hack/build-go-tool.sh)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import go_tools


@functools.cache
def binary() -> Path:
    path, errors = go_tools.build("kstatus")
    if path is None:
        raise RuntimeError(f"hack/build-go-tool.sh kstatus failed: {errors}")
    return path


def verdict(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message): Current, InProgress, Failed, Terminating, ..."""
    result = subprocess.run(
        [str(binary())], input=json.dumps(obj), capture_output=True, text=True, check=True
    )
    _, status, *message = result.stdout.strip().split(" ", 2)
    return status, message[0] if message else ""
