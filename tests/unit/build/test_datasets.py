"""Validation datasets: arrays mapped to inputs, shapes checked, errors naming the cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from modelship_runtime.build.datasets import load_dataset, synthetic_dataset
from modelship_runtime.build.errors import DatasetError
from modelship_runtime.build.signature import Signature, TensorSpec

SIG = Signature(inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, 4])])


def test_x_maps_to_the_single_input_and_is_cast(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((5, 4), np.float64), y=np.arange(5))
    data = load_dataset(tmp_path / "d.npz", "d.npz", SIG)
    assert data.inputs["features"].dtype == np.float32 and data.rows == 5
    assert data.labels is not None and data.labels.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x": np.ones((5, 3))}, "shape (5, 3) but the model expects (N, 4) (axis 1: 3 != 4)"),
        ({"x": np.ones((5, 4, 1))}, "rank 3 != 2"),
        ({"x": np.ones((5, 4)), "y": np.ones(4)}, "different numbers of rows"),
        ({"other": np.ones((5, 4))}, "no array for input 'features'"),
        ({"x": np.array([["a"] * 4] * 5)}, "is <U1, the model expects FP32"),
    ],
)
def test_wrong_data_is_named(tmp_path: Path, arrays: dict[str, np.ndarray], needle: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "d.npz", "s3://b/d.npz", SIG)
    assert needle in str(info.value) and str(info.value).startswith("s3://b/d.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_text("hello")
    with pytest.raises(DatasetError, match=r"not a readable \.npz"):
        load_dataset(tmp_path / "d.npz", "d.npz", SIG)


def test_synthetic_inputs_follow_the_signature() -> None:
    data = synthetic_dataset(SIG, rows=7)
    assert data.inputs["features"].shape == (7, 4) and data.labels is None
