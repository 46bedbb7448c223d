"""The compact summary for /dev/termination-log."""

from __future__ import annotations

import json

from modelship_runtime.build.summary import LIMIT, render_summary, summarize_failure


def test_failure_shape() -> None:
    assert json.loads(render_summary(summarize_failure("source is empty"))) == {
        "ok": False,
        "error": "source is empty",
    }


def test_large_summaries_shed_detail_to_fit() -> None:
    variants = [
        {
            "name": f"v{i}",
            "sha256": "a" * 64,
            "accuracy": 0.9,
            "p50Ms": 1.0,
            "p99Ms": 2.0,
            "selected": i == 3,
        }
        for i in range(60)
    ]
    text = render_summary(
        {"ok": True, "selected": "v3", "sourceSha256": "b" * 64, "variants": variants}
    )
    assert len(text.encode()) <= LIMIT
    data = json.loads(text)
    assert data["ok"] is True and any(v["selected"] for v in data["variants"])


def test_long_errors_are_clipped() -> None:
    text = render_summary(summarize_failure("x" * 10000))
    assert len(text.encode()) <= LIMIT and json.loads(text)["ok"] is False
