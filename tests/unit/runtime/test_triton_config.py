"""Golden tests of the Triton config.pbtxt renderer."""

from __future__ import annotations

import pytest
from modelship_runtime.triton.config import (
    DynamicBatching,
    InstanceGroup,
    TensorConfig,
    TritonModelConfig,
    render_config,
)
from pydantic import ValidationError

GOLDEN_BATCHING_CPU = """\
name: "fraud"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 30 ]
  }
]
output [
  {
    name: "scores"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
]
output [
  {
    name: "label"
    data_type: TYPE_INT64
    dims: [ 1 ]
    reshape: { shape: [ ] }
  }
]
dynamic_batching {
  preferred_batch_size: [ 8, 32 ]
  max_queue_delay_microseconds: 2000
}
instance_group [
  {
    count: 2
    kind: KIND_CPU
  }
]
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
version_policy: { latest: { num_versions: 1 } }
"""

GOLDEN_PLAIN_GPU = """\
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 0
instance_group [
  {
    count: 1
    kind: KIND_GPU
    gpus: [ 0, 1 ]
  }
]
version_policy: { latest: { num_versions: 1 } }
"""


def test_batching_cpu_model_with_signature() -> None:
    config = TritonModelConfig(
        name="fraud",
        max_batch_size=32,
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=2000, preferred_batch_sizes=(8, 32)
        ),
        instance_group=InstanceGroup(kind="KIND_CPU", count=2),
        intra_op_threads=1,
        inputs=(TensorConfig(name="x", datatype="FP32", shape=(-1, 30)),),
        outputs=(
            TensorConfig(name="scores", datatype="FP32", shape=(-1, 2)),
            TensorConfig(name="label", datatype="INT64", shape=(-1,)),
        ),
    )
    assert render_config(config) == GOLDEN_BATCHING_CPU


def test_gpu_model_without_batching_lets_triton_complete_the_signature() -> None:
    config = TritonModelConfig(
        name="resnet", instance_group=InstanceGroup(kind="KIND_GPU", gpus=(0, 1))
    )
    assert render_config(config) == GOLDEN_PLAIN_GPU


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "m", "dynamic_batching": DynamicBatching()}, "needs max_batch_size >= 1"),
        (
            {
                "name": "m",
                "max_batch_size": 4,
                "dynamic_batching": DynamicBatching(preferred_batch_sizes=(8,)),
            },
            "exceed max_batch_size",
        ),
        (
            {
                "name": "m",
                "max_batch_size": 4,
                "inputs": (TensorConfig(name="x", datatype="FP32", shape=(2, 3)),),
            },
            "free first dimension",
        ),
        ({"name": 'bad"name'}, "name"),
    ],
)
def test_inconsistent_configs_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        TritonModelConfig(**kwargs)  # type: ignore[arg-type]


def test_gpus_need_kind_gpu() -> None:
    with pytest.raises(ValidationError, match="KIND_GPU"):
        InstanceGroup(kind="KIND_CPU", gpus=(0,))
