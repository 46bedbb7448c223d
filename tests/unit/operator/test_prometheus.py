"""Prometheus answers as the analysis reads them: every failure is data, never an exception."""

from __future__ import annotations

import pytest
from modelship.prometheus import parse_vector


@pytest.mark.parametrize(
    ("status", "text", "samples", "error"),
    [
        (200, '{"status":"success","data":{"resultType":"vector","result":[]}}', 0, None),
        (
            200,
            '{"status":"success","data":{"resultType":"vector","result":'
            '[{"metric":{},"value":[1,"3"]}]}}',
            1,
            None,
        ),
        (200, '{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}', 1, None),
        (
            400,
            '{"status":"error","errorType":"bad_data","error":"parse error at char 3"}',
            None,
            "HTTP 400, bad_data: parse error at char 3",
        ),
        (502, "<html>bad gateway</html>", None, "HTTP 502, not a Prometheus answer"),
    ],
    ids=["empty", "one", "scalar", "bad-query", "not-prometheus"],
)
def test_parse_vector(status: int, text: str, samples: int | None, error: str | None) -> None:
    found, problem = parse_vector(status, text)
    assert (len(found) if found is not None else None) == samples
    assert (problem is None) == (error is None)
    if error is not None:
        assert problem is not None and problem.startswith(error)
