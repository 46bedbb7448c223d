"""Garbage-collector settings applied once the model is loaded."""

from __future__ import annotations

import gc

from modelship_runtime.server.heap import YOUNG_THRESHOLD, settle_after_load


def test_settling_freezes_the_start_up_heap_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_after_load()
        assert gc.get_freeze_count() > 0
        young, middle, old = gc.get_threshold()
        assert young == YOUNG_THRESHOLD > before[0]
        assert (middle, old) == before[1:]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
