"""Protocol-neutral inference request and response shapes shared by the REST and gRPC front ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# Parameters that only change how a response is encoded, never the computation: they do
# not keep two requests from sharing a batch.
ENCODING_PARAMETERS = frozenset({"binary_data_output", "binary_data", "binary_data_size"})


@dataclass(slots=True)
class Tensor:
    """A named tensor with its V2 datatype; `data` already has `shape`."""

    name: str
    datatype: str
    data: npt.NDArray[Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for; `binary` is None when the client did not say."""

    name: str
    binary: bool | None = None


@dataclass(slots=True)
class InferenceRequest:
    """One inference request after decoding, before validation against the model."""

    inputs: list[Tensor]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def wants_binary(self, output: str) -> bool:
        """Whether `output` should travel as binary data (REST only)."""
        if self.outputs:
            for requested in self.outputs:
                if requested.name == output and requested.binary is not None:
                    return requested.binary
        return bool(self.parameters.get("binary_data_output", False))


@dataclass(slots=True)
class InferenceResponse:
    """The outputs of one request, in the order the client asked for (or the model's order)."""

    model_name: str
    model_version: str
    outputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def empty_object_array(count: int) -> npt.NDArray[np.object_]:
    """An object array for BYTES tensors (numpy would otherwise pick a fixed-width string type)."""
    return np.empty(count, dtype=np.object_)
