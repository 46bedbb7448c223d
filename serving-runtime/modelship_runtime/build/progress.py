"""Progress reporting: a bar per stage in a terminal, structured JSON log lines everywhere else."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal, Protocol

from tqdm import tqdm

ProgressMode = Literal["auto", "bar", "json", "none"]


class Stage(Protocol):
    def advance(self, amount: float = 1) -> None: ...


class Progress(Protocol):
    def stage(self, name: str, total: float | None = None, unit: str = "it") -> Any: ...

    def log(self, event: str, **fields: Any) -> None: ...


class _NullStage:
    def advance(self, amount: float = 1) -> None:
        del amount


class SilentProgress:
    """Reports nothing: for library use and tests."""

    @contextmanager
    def stage(self, name: str, total: float | None = None, unit: str = "it") -> Iterator[Stage]:
        del name, total, unit
        yield _NullStage()

    def log(self, event: str, **fields: Any) -> None:
        del event, fields


class _JsonStage:
    # Jobs collect logs line by line: report at most every `interval` seconds, not per chunk.
    def __init__(self, progress: JsonProgress, name: str, total: float | None, unit: str) -> None:
        self._progress, self._name, self._total, self._unit = progress, name, total, unit
        self.done = 0.0
        self._last = time.monotonic()

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        now = time.monotonic()
        if now - self._last >= self._progress.interval:
            self._last = now
            fields: dict[str, Any] = {"stage": self._name, "done": self.done, "unit": self._unit}
            if self._total:
                fields["total"] = self._total
                fields["percent"] = round(100 * self.done / self._total, 1)
            self._progress.log("progress", **fields)


class JsonProgress:
    """One JSON object per line: `{"ts": ..., "event": ..., ...}`."""

    def __init__(self, stream: IO[str], interval: float = 5.0) -> None:
        self._stream = stream
        self.interval = interval

    @contextmanager
    def stage(self, name: str, total: float | None = None, unit: str = "it") -> Iterator[Stage]:
        self.log("stage-started", stage=name, **({"total": total} if total else {}))
        started = time.monotonic()
        handle = _JsonStage(self, name, total, unit)
        try:
            yield handle
        except BaseException as exc:
            self.log("stage-failed", stage=name, error=str(exc).splitlines()[0] if str(exc) else "")
            raise
        self.log(
            "stage-finished",
            stage=name,
            seconds=round(time.monotonic() - started, 3),
            **({"done": handle.done} if handle.done else {}),
        )

    def log(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        self._stream.write(json.dumps(record, default=str) + "\n")
        self._stream.flush()


class _BarStage:
    def __init__(self, bar: tqdm[Any]) -> None:
        self._bar = bar

    def advance(self, amount: float = 1) -> None:
        self._bar.update(amount)


class TerminalProgress:
    """tqdm bars on a terminal, one per stage; log events as plain lines above the bars."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    @contextmanager
    def stage(self, name: str, total: float | None = None, unit: str = "it") -> Iterator[Stage]:
        scale = unit == "B"
        with tqdm(
            total=total,
            desc=f"{name:<10}",
            unit=unit,
            unit_scale=scale,
            unit_divisor=1024 if scale else 1000,
            file=self._stream,
            leave=True,
            dynamic_ncols=True,
        ) as bar:
            yield _BarStage(bar)

    def log(self, event: str, **fields: Any) -> None:
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        tqdm.write(f"{event} {details}".rstrip(), file=self._stream)


def make_progress(
    mode: ProgressMode, *, tty: IO[str] | None = None, log: IO[str] | None = None
) -> Progress:
    """Bars when `tty` is a terminal (mode auto), JSON lines on `log` otherwise."""
    tty_stream = tty if tty is not None else sys.stderr
    log_stream = log if log is not None else sys.stdout
    if mode == "none":
        return SilentProgress()
    if mode == "bar" or (mode == "auto" and tty_stream.isatty()):
        return TerminalProgress(tty_stream)
    return JsonProgress(log_stream)
