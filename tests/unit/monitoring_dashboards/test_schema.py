"""The dashboards type-check against Grafana's published schema (@grafana/schema, `tsc --strict`).

npm installs the pinned packages of tests/support/grafana_schema/ once into
$MODELSHIP_CACHE/npm/grafana-schema-<version> (never into the repository); each run writes one
`.ts` file per dashboard there, assigning the JSON as an object literal to the checker's type, so
unknown keys fail as well as wrong types.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelship import api, dashboards

from tests.unit.monitoring_dashboards.queries import ROOT

CHECKER = ROOT / "tests" / "support" / "grafana_schema"
NPM_TIMEOUT = 300
TSC_TIMEOUT = 120
_ERROR = re.compile(r"^(?P<file>[^(\s]+\.ts)\(\d+,\d+\): error (?P<message>.*)$", re.M)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the dashboards are type-checked with npm and Node.js 20+ "
            "(install them, e.g. `apt-get install nodejs npm`)"
        )
    return path


def _cache_dir() -> Path:
    package = json.loads((CHECKER / "package.json").read_text())
    version = package["devDependencies"]["@grafana/schema"]
    base = Path(os.environ.get("MODELSHIP_CACHE") or Path.home() / ".cache" / "modelship")
    return base / "npm" / f"grafana-schema-{version}"


def _install(cache: Path) -> Path:
    """`npm ci` the checker's lockfile into the cache once; returns tsc's entry point."""
    npm = _tool("npm")
    lock = hashlib.sha256(
        (CHECKER / "package.json").read_bytes() + (CHECKER / "package-lock.json").read_bytes()
    ).hexdigest()
    tsc = cache / "node_modules" / "typescript" / "bin" / "tsc"
    stamp = cache / ".installed"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two test runs must not install over each other
        if stamp.exists() and stamp.read_text() == lock and tsc.exists():
            return tsc
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(CHECKER / name, cache / name)
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(cache)],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci in {cache} failed:\n{result.stdout}\n{result.stderr}")
        stamp.write_text(lock)
    return tsc


def _module(dashboard: dict[str, Any]) -> str:
    return (
        "import type { ModelshipDashboard } from './check';\n"
        f"export const dashboard: ModelshipDashboard = {json.dumps(dashboard, indent=2)};\n"
    )


def _broken_key() -> dict[str, Any]:
    dashboard = dashboards.model_dashboard()
    dashboard["panels"][1]["titel"] = "misspelt"
    return dashboard


def _broken_type() -> dict[str, Any]:
    dashboard = dashboards.fleet_dashboard()
    dashboard["graphTooltip"] = "shared"
    return dashboard


def _configmap_dashboard() -> dict[str, Any]:
    md = api.ModelDeployment.from_body(
        {
            "metadata": {"name": "fraud", "namespace": "ml", "uid": "u", "generation": 1},
            "spec": {"model": {"uri": "s3://m/model.onnx"}},
        }
    )
    loaded: dict[str, Any] = json.loads(
        dashboards.render_dashboard_configmap(md)["data"]["fraud.json"]
    )
    return loaded


@pytest.fixture(scope="module")
def tsc_errors() -> Iterator[dict[str, list[str]]]:
    """One `tsc --strict --noEmit` over every dashboard; file name -> its errors."""
    node = _tool("node")
    cache = _cache_dir()
    tsc = _install(cache)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache))  # node_modules is found upwards
    try:
        for name in ("tsconfig.json", "check.ts"):
            shutil.copyfile(CHECKER / name, work / name)
        sources = {
            "model.ts": dashboards.model_dashboard(),
            "fleet.ts": dashboards.fleet_dashboard(),
            "configmap.ts": _configmap_dashboard(),
            "broken_key.ts": _broken_key(),
            "broken_type.ts": _broken_type(),
        }
        for name, dashboard in sources.items():
            (work / name).write_text(_module(dashboard))
        result = subprocess.run(
            [node, str(tsc), "--strict", "--noEmit", "-p", str(work / "tsconfig.json")],
            capture_output=True,
            text=True,
            timeout=TSC_TIMEOUT,
            check=False,
            cwd=work,
        )
        errors: dict[str, list[str]] = {name: [] for name in sources}
        for match in _ERROR.finditer(result.stdout):
            errors.setdefault(Path(match["file"]).name, []).append(match["message"])
        unexplained = result.returncode != 0 and not any(errors.values())
        assert not unexplained, f"tsc failed without errors:\n{result.stdout}\n{result.stderr}"
        yield errors
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("source", ["model.ts", "fleet.ts", "configmap.ts"])
def test_dashboard_type_checks_against_grafana_schema(
    tsc_errors: dict[str, list[str]], source: str
) -> None:
    assert not tsc_errors[source], f"{source} does not match @grafana/schema:\n" + "\n".join(
        tsc_errors[source]
    )


def test_the_checker_rejects_unknown_keys_and_wrong_types(tsc_errors: dict[str, list[str]]) -> None:
    assert any("titel" in e for e in tsc_errors["broken_key.ts"]), tsc_errors["broken_key.ts"]
    assert any(
        "graphTooltip" in e or "DashboardCursorSync" in e for e in tsc_errors["broken_type.ts"]
    ), tsc_errors["broken_type.ts"]


def test_nothing_was_installed_into_the_repository() -> None:
    assert not (CHECKER / "node_modules").exists()
