"""Progress: JSON lines off a terminal, with stage start, finish and failure."""

from __future__ import annotations

import io
import json

import pytest
from modelship_runtime.build.progress import (
    JsonProgress,
    SilentProgress,
    TerminalProgress,
    make_progress,
)


def test_json_lines_per_stage() -> None:
    stream = io.StringIO()
    progress = JsonProgress(stream, interval=0)
    with progress.stage("fetch", total=10, unit="B") as stage:
        stage.advance(5)
    with pytest.raises(RuntimeError), progress.stage("convert"):
        raise RuntimeError("boom\nsecond line")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "stage-started", "progress", "stage-finished", "stage-started", "stage-failed",
    ]  # fmt: skip
    assert events[1]["percent"] == 50.0 and events[-1]["error"] == "boom"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_selection() -> None:
    assert isinstance(make_progress("auto", tty=_Tty(), log=io.StringIO()), TerminalProgress)
    assert isinstance(make_progress("auto", tty=io.StringIO(), log=io.StringIO()), JsonProgress)
    assert isinstance(make_progress("none"), SilentProgress)
