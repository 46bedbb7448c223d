"""Sharing the recommended replicas between stable and canary by the canary's traffic weight."""

from __future__ import annotations

import pytest
from modelship.scaling.recommend import split_by_weight


@pytest.mark.parametrize(
    ("total", "weight", "min_replicas", "split"),
    [
        pytest.param(10, 0, 1, (10, 0), id="no canary"),
        pytest.param(10, 25, 1, (7, 3), id="25% of 10 rounds half up to 3"),
        pytest.param(10, 50, 1, (5, 5), id="half and half"),
        pytest.param(4, 5, 1, (3, 1), id="a small weight still gets one canary replica"),
        pytest.param(10, 95, 1, (1, 9), id="a large weight leaves stable one replica"),
        pytest.param(10, 50, 8, (8, 2), id="stable never below minReplicas"),
        pytest.param(10, 50, 0, (5, 5), id="minReplicas 0: stable still keeps one"),
        pytest.param(2, 90, 1, (1, 1), id="two replicas: one each"),
        pytest.param(1, 50, 1, (1, 1), id="too few for both floors: one more than total"),
        pytest.param(3, 50, 3, (3, 1), id="minReplicas fills total: the canary comes on top"),
        pytest.param(10, 100, 5, (0, 10), id="weight 100: all to the canary"),
        pytest.param(0, 100, 0, (0, 1), id="weight 100 from zero: the canary needs a pod"),
        pytest.param(0, 0, 0, (0, 0), id="nothing at all"),
    ],
)
def test_split_by_weight(
    total: int, weight: int, min_replicas: int, split: tuple[int, int]
) -> None:
    assert split_by_weight(total, weight, min_replicas) == split


@pytest.mark.parametrize("weight", range(1, 100))
def test_split_keeps_both_floors_and_the_total_when_it_can(weight: int) -> None:
    for total in range(2, 30):
        stable, canary = split_by_weight(total, weight, min_replicas=1)
        assert canary >= 1
        assert stable >= 1
        assert stable + canary == total


@pytest.mark.parametrize(("total", "weight"), [(-1, 10), (5, -1), (5, 101)])
def test_split_refuses_nonsense(total: int, weight: int) -> None:
    with pytest.raises(ValueError):
        split_by_weight(total, weight)
