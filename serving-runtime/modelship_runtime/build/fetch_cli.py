"""Command line of `modelship-runtime fetch`: a model file or a published build into a directory."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from modelship_runtime.build.artifacts import fetch_artifact
from modelship_runtime.build.commandline import OneLineParser, add_transfer_options, run_transfer
from modelship_runtime.build.fetching import RetryPolicy
from modelship_runtime.build.progress import make_progress


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="modelship-runtime fetch",
        description="Download one file, or a published build (a prefix holding manifest.json, "
        "with every "
        "model file it lists, each verified), into a directory.",
    )
    p.add_argument(
        "--source", required=True, help="file://, http(s)://, s3://, gs:// URI or a path"
    )
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--sha256", help="expected sha256 of the file (of manifest.json for a build)")
    p.add_argument(
        "--model-sha256",
        help="for a build: sha256 its selected model file must have (recorded when it was built)",
    )
    add_transfer_options(p)
    return p


def _fetch(args: argparse.Namespace) -> list[Path]:
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=args.output) as scratch:
        return fetch_artifact(
            args.source,
            args.output,
            Path(scratch),
            sha256=args.sha256,
            model_sha256=args.model_sha256,
            policy=RetryPolicy.from_env(),
            progress=make_progress(args.progress),
        )


def main(argv: list[str]) -> int:
    return run_transfer(build_parser(), argv, _fetch)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
