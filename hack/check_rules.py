"""`make lint`: promtool checks every alert rule modelship ships, with --lint-fatal.

The operator's PrometheusRule (manifests/monitoring/) and the per-model rule as the operator
renders it for each example ModelDeployment: promtool reads plain rule files, so the groups are
taken out of the PrometheusRule objects first.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from modelship import alerts, api

ROOT = Path(__file__).resolve().parents[1]


def _groups(rule: dict[str, Any]) -> dict[str, Any]:
    return {"groups": rule["spec"]["groups"]}


def main() -> int:
    promtool = Path(sys.argv[1])
    if not promtool.is_file():
        print(f"{promtool} is missing: run 'make binaries'", file=sys.stderr)
        return 1
    rules = {
        "manifests/monitoring/operator-rules.yaml": yaml.safe_load(
            (ROOT / "manifests" / "monitoring" / "operator-rules.yaml").read_text()
        )
    }
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(example.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == api.KIND:
                body = {**doc, "metadata": {**doc["metadata"], "namespace": "default", "uid": "u"}}
                body["metadata"].setdefault("generation", 1)
                md = api.ModelDeployment.from_body(body)
                rules[f"{example.name} (rendered)"] = alerts.render_prometheus_rule(md)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (name, rule) in enumerate(rules.items()):
            path = Path(tmp) / f"{i}.rules.yaml"
            path.write_text(yaml.safe_dump(_groups(rule)))
            files.append(path)
            print(f"promtool check rules: {name}")
        command = [str(promtool), "check", "rules", "--lint-fatal", *map(str, files)]
        result = subprocess.run(command, check=False)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
