"""TF Serving's REST shapes, decoded into and encoded from the data plane's requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from modelship_runtime.server.errors import BadRequest, InferenceError
from modelship_runtime.server.protocol import InferenceResponse, Tensor
from modelship_runtime.server.tfserving import decode_predict, encode_predict

PAIR = [
    {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
    {"name": "b", "datatype": "INT64", "shape": [-1, 2]},
]
ONE = [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]


def _decoded(body: Any, inputs: list[dict[str, Any]]) -> tuple[str, dict[str, np.ndarray]]:
    predict = decode_predict(orjson.dumps(body), inputs)
    return predict.form, {t.name: t.data for t in predict.request.inputs}


@pytest.mark.parametrize(
    ("body", "inputs", "form", "expected"),
    [
        ({"instances": [[1, 2], [3, 4]]}, ONE, "row", {"x": [[1, 2], [3, 4]]}),
        ({"inputs": [[1, 2]]}, ONE, "columnar", {"x": [[1, 2]]}),
        ({"inputs": {"x": [[1, 2]]}}, ONE, "columnar", {"x": [[1, 2]]}),
        (
            {"instances": [{"a": [1, 2], "b": [3, 4]}, {"a": [5, 6], "b": [7, 8]}]},
            PAIR,
            "row",
            {"a": [[1, 2], [5, 6]], "b": [[3, 4], [7, 8]]},
        ),
        (
            {"signature_name": "serving_default", "inputs": {"a": [[1, 2]], "b": [[3, 4]]}},
            PAIR,
            "columnar",
            {"a": [[1, 2]], "b": [[3, 4]]},
        ),
    ],
)
def test_both_forms_become_one_tensor_per_input(
    body: Any, inputs: list[dict[str, Any]], form: str, expected: dict[str, Any]
) -> None:
    got_form, tensors = _decoded(body, inputs)
    assert got_form == form
    assert set(tensors) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(tensors[name], value)
    assert tensors.get("b", np.zeros(1, np.int64)).dtype == np.int64


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [[1, 2]], "inputs": [[1, 2]]}, "exactly one"),
        ({}, "exactly one"),
        ({"instances": []}, "non-empty"),
        ({"instances": [{"a": [1, 2], "b": [3, 4]}, {"a": [1, 2]}]}, "instances[1]"),
        ({"inputs": {"a": [[1, 2]], "c": [[1]]}}, "'c'"),
        ({"inputs": [[1, 2]]}, "must name them"),
        ({"inputs": {"a": [[1, 2]], "b": [[1.5, 2]]}}, "floats"),
        ({"signature_name": "predict_images", "inputs": {}}, "predict_images"),
    ],
)
def test_bad_bodies_name_the_problem(body: Any, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle.replace("[", r"\[").replace("]", r"\]")):
        decode_predict(orjson.dumps(body), PAIR)


def _response(*tensors: Tensor) -> InferenceResponse:
    return InferenceResponse(model_name="m", model_version="1", outputs=list(tensors))


def test_answers_in_tf_servings_shapes() -> None:
    scores = Tensor("scores", "FP32", np.array([[0.25, 0.75], [0.5, 0.5]], np.float32))
    label = Tensor("label", "INT64", np.array([1, 0], np.int64))
    assert orjson.loads(encode_predict(_response(scores), "row")) == {
        "predictions": [[0.25, 0.75], [0.5, 0.5]]
    }
    assert orjson.loads(encode_predict(_response(scores, label), "row")) == {
        "predictions": [{"scores": [0.25, 0.75], "label": 1}, {"scores": [0.5, 0.5], "label": 0}]
    }
    assert orjson.loads(encode_predict(_response(scores, label), "columnar")) == {
        "outputs": {"scores": [[0.25, 0.75], [0.5, 0.5]], "label": [1, 0]}
    }
    words = np.array([[b"a", b"b"]], dtype=np.object_)
    assert orjson.loads(encode_predict(_response(Tensor("w", "BYTES", words)), "columnar")) == {
        "outputs": [["a", "b"]]
    }


def test_outputs_without_a_shared_batch_cannot_be_answered_by_row() -> None:
    rows = Tensor("rows", "FP32", np.zeros((2, 1), np.float32))
    other = Tensor("other", "FP32", np.zeros((3,), np.float32))
    with pytest.raises(InferenceError, match="columnar"):
        encode_predict(_response(rows, other), "row")
