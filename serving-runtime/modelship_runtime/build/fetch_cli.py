"""Command line of `modelship-runtime fetch`: a model file or a published build into a directory."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from modelship_runtime.build.artifacts import fetch_artifact
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.fetching import RetryPolicy
from modelship_runtime.build.objectstore import CREDENTIALS_DIR_ENV
from modelship_runtime.build.progress import make_progress


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BuildError(f"usage error: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "json", "none"])
    p.add_argument(
        "--credentials-dir",
        help=f"mounted Secret with AWS_* keys as files (or ${CREDENTIALS_DIR_ENV})",
    )
    return p


def main(argv: list[str]) -> int:

    try:
        args = build_parser().parse_args(argv)
        if args.credentials_dir:
            os.environ[CREDENTIALS_DIR_ENV] = args.credentials_dir
        progress = make_progress(args.progress)
        args.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=args.output) as scratch:
            files = fetch_artifact(
                args.source,
                args.output,
                Path(scratch),
                sha256=args.sha256,
                policy=RetryPolicy.from_env(),
                progress=progress,
            )
    except BuildError as exc:
        print(f"modelship-runtime fetch: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"modelship-runtime fetch: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
