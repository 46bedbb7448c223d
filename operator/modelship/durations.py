"""Durations: the spec's (30s, 1.5m, 1h30m) to milliseconds, and milliseconds to Prometheus'."""

from __future__ import annotations

import re

from modelship import api

# Prometheus' own duration syntax (integers only, unlike the spec's DURATION_PATTERN).
PROMETHEUS_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def duration_ms(text: str) -> int:
    """Milliseconds of a spec duration (api.DURATION_PATTERN: 30s, 1.5m, 1h30m, 250ms)."""
    if not re.fullmatch(api.DURATION_PATTERN, text):
        raise ValueError(f"not a duration: {text!r}")
    return round(sum(float(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text)))


def prometheus_duration(ms: int) -> str:
    """A Prometheus duration for a number of milliseconds: integers only, largest units first."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit in ("h", "m", "s", "ms"):
        count, ms = divmod(ms, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
