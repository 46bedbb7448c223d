"""Selection of the variant to serve: the fastest one that passed validation."""

from __future__ import annotations

from dataclasses import dataclass

from modelship_runtime.build.errors import ValidationFailure
from modelship_runtime.build.manifest import VariantRecord


@dataclass(frozen=True)
class Choice:
    selected: str
    reasons: dict[str, str]  # for each variant not selected: why


def select_variant(records: list[VariantRecord]) -> Choice:
    """Lowest p50 latency at batch 1 among variants that passed; never one that failed."""
    candidates = [r for r in records if r.passed and r.metrics is not None]
    if not candidates:
        failures = "; ".join(f"{r.name}: {r.reason}" for r in records if r.reason)
        raise ValidationFailure(f"no variant passed validation ({failures or 'none was built'})")
    # Ties go to the earlier (less transformed) variant: the order they were planned in.
    best = min(candidates, key=lambda r: r.metrics.p50_ms if r.metrics else float("inf"))
    assert best.metrics is not None
    reasons: dict[str, str] = {}
    for record in records:
        if record.name == best.name:
            continue
        if not record.passed:
            reasons[record.name] = record.reason or "failed"
        elif record.metrics is not None:
            reasons[record.name] = (
                f"p50 {record.metrics.p50_ms:.3f} ms vs "
                f"{best.metrics.p50_ms:.3f} ms for {best.name}"
            )
    return Choice(best.name, reasons)
