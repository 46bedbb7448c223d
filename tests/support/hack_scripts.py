"""The generators under hack/ (run there as scripts) loaded as modules by the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HACK = Path(__file__).resolve().parents[2] / "hack"


def load(name: str) -> ModuleType:
    """hack/<name>.py as a module; hack/ goes on sys.path first, as when it runs as a script
    (the generators share hack/generated_files.py)."""
    if str(HACK) not in sys.path:
        sys.path.append(str(HACK))
    spec = importlib.util.spec_from_file_location(f"modelship_hack_{name}", HACK / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
