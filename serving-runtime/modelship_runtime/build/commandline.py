"""What `fetch` and `publish` share: a parser whose errors are one line, the options of a
transfer, and one line on stderr for any failure (exit 1)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.objectstore import CREDENTIALS_DIR_ENV


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BuildError(f"usage error: {message}")


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", default="auto", choices=["auto", "bar", "json", "none"])
    parser.add_argument(
        "--credentials-dir",
        help=f"mounted Secret with AWS_* keys as files (or ${CREDENTIALS_DIR_ENV})",
    )


def run_transfer(
    parser: argparse.ArgumentParser,
    argv: list[str],
    transfer: Callable[[argparse.Namespace], Sequence[str | Path]],
) -> int:
    """Parse, run, print what `transfer` returns one per line; a failure is one line on stderr."""
    try:
        args = parser.parse_args(argv)
        if args.credentials_dir:
            os.environ[CREDENTIALS_DIR_ENV] = args.credentials_dir
        lines = transfer(args)
    except BuildError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        cause = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        print(f"{parser.prog}: {cause}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
