"""The compact build summary (< 4 KiB) for the operator, e.g. written to /dev/termination-log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelship_runtime.build.manifest import Manifest

# The kubelet truncates a termination message at 4096 bytes; stay clearly below.
LIMIT = 4000


def summarize_success(manifest: Manifest) -> dict[str, Any]:
    variants: list[dict[str, Any]] = []
    for variant in manifest.variants:
        entry: dict[str, Any] = {"name": variant.name, "sha256": variant.sha256}
        if variant.metrics is not None:
            m = variant.metrics
            entry["accuracy"] = _round(m.accuracy if m.accuracy is not None else m.agreement)
            entry["accuracyDrop"] = _round(m.accuracy_drop)
            entry["p50Ms"] = _round(m.p50_ms)
            entry["p99Ms"] = _round(m.p99_ms)
        entry["selected"] = variant.selected
        if not variant.passed:
            entry["passed"] = False
        variants.append(entry)
    return {
        "ok": True,
        "selected": manifest.selected,
        "sourceSha256": manifest.source.sha256,
        "variants": variants,
    }


def summarize_failure(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


def render_summary(summary: dict[str, Any]) -> str:
    """Serialize compactly, shedding detail until it fits the limit."""
    text = json.dumps(summary, separators=(",", ":"))
    if len(text.encode()) <= LIMIT:
        return text
    if summary.get("variants"):
        slim = dict(summary)
        slim["variants"] = [
            {k: v for k, v in variant.items() if k in {"name", "sha256", "selected"}}
            for variant in summary["variants"]
        ]
        text = json.dumps(slim, separators=(",", ":"))
        if len(text.encode()) <= LIMIT:
            return text
        slim["variants"] = [v for v in slim["variants"] if v.get("selected")]
        return json.dumps(slim, separators=(",", ":"))[:LIMIT]
    if "error" in summary:
        clipped = dict(summary)
        clipped["error"] = str(summary["error"])[: LIMIT - 40]
        return json.dumps(clipped, separators=(",", ":"))
    return text[:LIMIT]


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    # /dev/termination-log is a plain file the kubelet reads; no rename trick applies to it.
    path.write_text(render_summary(summary))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
