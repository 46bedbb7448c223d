"""cli-utils' kstatus verdict on an object, as Flux and kstatus-based tools compute it (the small
Go program hack/kstatus, built and cached by hack/build-go-tool.sh)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support import go_tools


def verdict(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message): Current, InProgress, Failed, Terminating, ..."""
    result = subprocess.run(
        [str(go_tools.binary("kstatus"))],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=True,
    )
    _, status, *message = result.stdout.strip().split(" ", 2)
    return status, message[0] if message else ""
