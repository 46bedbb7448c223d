"""Whether a live child already holds what the operator would apply (so nothing is written)."""

from __future__ import annotations

from typing import Any


def contains(actual: Any, desired: Any) -> bool:
    """Whether every field of desired is present with the same value in actual.

    Fields the apiserver defaults (and other managers own) are ignored, so an unchanged child
    is never re-applied; quantities written as integers match their canonical string form.
    """
    if isinstance(desired, dict):
        # The apiserver drops empty lists and maps (`envFrom: []`): absent is what they read as.
        return isinstance(actual, dict) and all(
            contains(actual[k], v) if k in actual else v in ([], {}) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(actual, bool):
        return type(actual) is type(desired) and actual == desired
    if isinstance(desired, int | float) and isinstance(actual, str):
        return str(desired) == actual
    return bool(actual == desired)
