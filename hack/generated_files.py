"""Writing, or with --check comparing, the committed files a hack/ generator produces
(hack/dashboards.py, hack/chart.py). hack/ is on sys.path when a generator runs as a script;
tests/support/hack_scripts.py puts it there when a test loads one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

Outputs = dict[Path, Callable[[], str]]


def stale(outputs: Outputs) -> list[Path]:
    """The files whose committed text differs from a fresh generation (or that are missing)."""
    return [
        path
        for path, produce in outputs.items()
        if (path.read_text() if path.exists() else "") != produce()
    ]


def main(argv: list[str] | None, *, script: str, doc: str | None, outputs: Outputs) -> int:
    """The command line of a generator: write every file, or with --check name the stale ones
    (exit 1) and write nothing."""
    parser = argparse.ArgumentParser(prog=f"python {script}", description=doc)
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    if args.check:
        found = stale(outputs)
        for path in found:
            print(f"{path.relative_to(root)} is stale: run `python {script}`", file=sys.stderr)
        return 1 if found else 0
    for path, produce in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(produce())
        print(f"wrote {path.relative_to(root)}")
    return 0
