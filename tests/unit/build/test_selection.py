"""Selection: the fastest variant that passed; never one that failed."""

from __future__ import annotations

import pytest
from modelship_runtime.build.errors import ValidationFailure
from modelship_runtime.build.manifest import VariantMetrics, VariantRecord
from modelship_runtime.build.selection import select_variant


def record(name: str, p50: float | None, passed: bool = True) -> VariantRecord:
    metrics = None
    if p50 is not None:
        metrics = VariantMetrics(
            samples=10,
            agreement=1.0,
            accuracy_drop=0.0,
            p50_ms=p50,
            p99_ms=p50 * 2,
            throughput_per_sec=1.0,
        )
    return VariantRecord(
        name=name,
        quantization="none",
        graph_optimization="all",
        passed=passed,
        metrics=metrics,
        reason=None if passed else "accuracy drop 0.05 > max 0.01",
    )


def test_fastest_passing_variant_wins() -> None:
    choice = select_variant([record("fp32", 1.0), record("int8", 0.4), record("fp16", 1.5)])
    assert choice.selected == "int8"
    assert "p50 1.000 ms" in choice.reasons["fp32"]


def test_a_failed_variant_is_never_selected_even_when_fastest() -> None:
    choice = select_variant([record("fp32", 1.0), record("int8", 0.1, passed=False)])
    assert choice.selected == "fp32"
    assert choice.reasons["int8"].startswith("accuracy drop")


def test_ties_keep_the_planned_order() -> None:
    assert select_variant([record("fp32", 1.0), record("int8", 1.0)]).selected == "fp32"


def test_nothing_passed_is_an_error_listing_why() -> None:
    with pytest.raises(
        ValidationFailure, match=r"no variant passed validation .*fp32: accuracy drop"
    ):
        select_variant([record("fp32", 1.0, passed=False), record("int8", None, passed=False)])
