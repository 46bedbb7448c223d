"""Which variants a quantization setting plans, and the offline optimization level."""

from __future__ import annotations

import pytest
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.optimization import offline_level, planned_variants


@pytest.mark.parametrize(
    ("quantization", "calibration", "names"),
    [
        ("none", False, ["fp32"]),
        ("dynamic-int8", False, ["fp32", "int8"]),
        ("static-int8", True, ["fp32", "int8-static"]),
        ("fp16", False, ["fp32", "fp16"]),
        ("auto", False, ["fp32", "int8", "fp16"]),
        ("auto", True, ["fp32", "int8", "int8-static", "fp16"]),
    ],
)
def test_fp32_is_always_the_baseline(
    quantization: str, calibration: bool, names: list[str]
) -> None:
    assert planned_variants(quantization, calibration) == names  # type: ignore[arg-type]


def test_static_int8_needs_calibration_data() -> None:
    with pytest.raises(BuildError, match="static-int8 needs --calibration-data"):
        planned_variants("static-int8", has_calibration=False)


def test_saved_models_stop_at_extended() -> None:
    assert offline_level("all") == "extended"
    assert offline_level("basic") == "basic"
