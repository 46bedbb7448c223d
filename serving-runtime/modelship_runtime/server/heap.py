"""Garbage-collector settings for a serving process, applied once the model is loaded."""

from __future__ import annotations

import gc

# Container allocations between two young-generation collections (CPython's default is 700).
# A request allocates a few hundred (dicts, lists, futures, dataclasses); with 64 in flight
# the default collects every few requests and promotes objects that die a moment later,
# which the older generations then scan again. Measured on the benchmark's MLP (binary,
# batching, 64 in flight): the application's own time per request fell by a quarter
# (docs/benchmarks.md). Memory held by cycles waits a little longer: requests make few.
YOUNG_THRESHOLD = 10_000


def settle_after_load() -> None:
    """Move everything loaded so far (modules, the ONNX session's Python side, settings) out
    of the collector's sight, and collect the young generation less often. Objects made per
    request are collected as before; only the fixed start-up heap is no longer rescanned."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
