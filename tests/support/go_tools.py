"""The project's small Go checkers (hack/<tool>), built and cached by hack/build-go-tool.sh."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build(tool: str) -> tuple[Path | None, str]:
    """The binary's path (None when the build failed), and the build's stderr."""
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-go-tool.sh"), tool],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    path = Path(built.stdout.strip().splitlines()[-1]) if built.stdout.strip() else None
    if built.returncode != 0 or path is None or not path.is_file():
        return None, built.stderr
    return path, built.stderr


@functools.cache
def binary(tool: str) -> Path:
    """The tool's binary, built once per test session; a failed build raises with its stderr."""
    path, errors = build(tool)
    if path is None:
        raise RuntimeError(f"hack/build-go-tool.sh {tool} failed: {errors}")
    return path
