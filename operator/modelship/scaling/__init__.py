"""The built-in autoscaler's pure core: the PromQL it reads and the replica recommendation."""

from modelship.scaling.queries import Queries, Windows, build_queries, derive_windows
from modelship.scaling.recommend import (
    Memory,
    Reading,
    Readings,
    Recommendation,
    Sample,
    ScaleUpWindow,
    ScalingParams,
    ScalingState,
    SignalRecommendation,
    recommend,
    split_by_weight,
)

__all__ = [
    "Memory",
    "Queries",
    "Reading",
    "Readings",
    "Recommendation",
    "Sample",
    "ScaleUpWindow",
    "ScalingParams",
    "ScalingState",
    "SignalRecommendation",
    "Windows",
    "build_queries",
    "derive_windows",
    "recommend",
    "split_by_weight",
]
