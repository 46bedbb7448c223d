"""The operator's layers: every module imports only from layers below its own (never upward,
never sideways into a peer that could import it back)."""

from __future__ import annotations

import ast
from pathlib import Path

import modelship

PACKAGE = Path(modelship.__file__).parent

# Top to bottom. A module may import any module of a lower layer.
LAYERS: list[set[str]] = [
    {"__main__"},  # the process
    {"handlers"},  # kopf routes
    {"autoscaler"},  # the autoscaler's loop: reads Prometheus, hands outcomes to the reconciler
    {"reconcile"},  # observe -> plan -> act -> status, the only caller of kube
    {"kube", "metrics", "prometheus"},  # every API call; own /metrics; the Prometheus client
    {"planning", "status"},  # what to change; what status says (both pure)
    {"revisions", "monitoring"},  # the revision lifecycle; which monitoring children exist
    {"rollout"},  # the canary state machine
    {"alerts", "dashboards", "builds", "pods"},  # children with logic of their own; pod states
    {"render", "analysis", "scaling"},  # jinja2 builders; pure canary analysis and scaling
    {"traffic"},  # the Gateway's routes: backends, what the Gateway says of them, its URL
    {"naming", "crd", "durations", "drift", "timestamps"},  # names, identity, CRD; helpers
    {"api", "settings"},  # the models: import neither kopf nor kubernetes
]


def _layer(module: str) -> int:
    top = module.split(".", maxsplit=1)[0]
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"modelship.{module} belongs to no layer: add it to LAYERS")


def _imports(path: Path) -> set[str]:
    """The modelship modules a file imports (first component below the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "modelship":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("modelship."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("modelship."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_module_imports_only_downward() -> None:
    upward: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name == "__init__" and len(relative.parts) == 1:
            continue
        module = ".".join(relative.parts)
        own = _layer(module)
        for target in _imports(path):
            if target == module.split(".")[0]:
                continue  # within one subpackage (analysis, scaling)
            if _layer(target) <= own:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_api_models_import_neither_kopf_nor_kubernetes() -> None:
    for name in ("api.py", "settings.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        roots = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not roots & {"kopf", "kubernetes", "aiohttp"}, name
