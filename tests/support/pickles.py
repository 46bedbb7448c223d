"""A pickle whose loading would run a shell command: what the pickle inspection must refuse."""

from __future__ import annotations

import os
from pathlib import Path


class RunsCommand:
    """Unpickling it would create `marker`, so a test can prove nothing ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))
