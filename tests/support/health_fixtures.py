"""ModelDeployments as the e2e suite leaves them, kept as fixtures for the GitOps health checks
(tests/integration/gitops): Argo CD's Lua and kstatus judge these objects, not made-up ones.

The suite writes them only when MODELSHIP_CAPTURE_HEALTH_FIXTURES names a directory
(hack/health-fixtures.sh regenerates tests/fixtures/health from a live run)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CAPTURE_ENV = "MODELSHIP_CAPTURE_HEALTH_FIXTURES"
DIRECTORY = Path(__file__).resolve().parents[1] / "fixtures" / "health"


def capture(situation: str, obj: dict[str, Any]) -> None:
    """Keep `obj` as the fixture of `situation`, without what differs from run to run and
    matters to no health check (uid, resourceVersion, managedFields, the test namespace)."""
    target = os.environ.get(CAPTURE_ENV)
    if not target:
        return
    metadata = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {
            "name": metadata["name"],
            "namespace": "ml",
            "generation": metadata["generation"],
            **({"annotations": a} if (a := _annotations(metadata)) else {}),
        },
        "spec": obj["spec"],
        "status": obj.get("status", {}),
    }
    path = Path(target) / f"{situation}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")


def _annotations(metadata: dict[str, Any]) -> dict[str, str]:
    # kopf's own bookkeeping is noise in a fixture; a rollout action annotation is not.
    return {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k.startswith("modelship.io/") and "last-handled" not in k and "kopf" not in k
    }


def load_all() -> dict[str, dict[str, Any]]:
    """situation -> object, for every committed fixture."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DIRECTORY.glob("*.json"))}
