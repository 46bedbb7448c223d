"""cli-utils' kstatus verdict on an object, as Flux and kstatus-based tools compute it (the small
Go program hack/kstatus, built and cached by hack/build-go-tool.sh)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def binary() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-go-tool.sh"), "kstatus"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    path = Path(built.stdout.strip().splitlines()[-1]) if built.stdout.strip() else None
    if built.returncode != 0 or path is None or not path.is_file():
        raise RuntimeError(f"hack/build-go-tool.sh kstatus failed: {built.stderr}")
    return path


def verdict(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message): Current, InProgress, Failed, Terminating, ..."""
    result = subprocess.run(
        [str(binary())], input=json.dumps(obj), capture_output=True, text=True, check=True
    )
    _, status, *message = result.stdout.strip().split(" ", 2)
    return status, message[0] if message else ""
