"""Command line of `modelship-runtime publish`: a finished build directory into the artifact store.

A step of its own so that the store's credentials reach only this container: the build, which
runs the model's own code (unpickling is execution), never holds them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelship_runtime.build.commandline import OneLineParser, add_transfer_options, run_transfer
from modelship_runtime.build.errors import PublishError
from modelship_runtime.build.fetching import sha256_of
from modelship_runtime.build.manifest import MANIFEST_NAME, read_manifest
from modelship_runtime.build.progress import make_progress
from modelship_runtime.build.publishing import publish


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="modelship-runtime publish",
        description="Publish a finished build (a directory holding manifest.json and the model "
        "files it lists, each checked against its digest) to s3://, gs:// or file://, "
        "manifest.json last.",
    )
    p.add_argument("--source", required=True, type=Path, help="the build's --output directory")
    p.add_argument("--destination", required=True, help="s3://bucket/prefix/, file:///path/")
    add_transfer_options(p)
    return p


def _publish(args: argparse.Namespace) -> list[str]:
    manifest_path = args.source / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    files: list[str] = []
    for variant in manifest.variants:
        if not variant.file:
            continue
        if "/" in variant.file or variant.file.startswith("."):
            raise PublishError(f"{manifest_path}: file name {variant.file!r} is not plain")
        digest = sha256_of(args.source / variant.file)
        if digest != variant.sha256:
            raise PublishError(
                f"{args.source / variant.file}: sha256 {digest}, the manifest lists "
                f"{variant.sha256}"
            )
        files.append(variant.file)
    text = manifest_path.read_text()
    publish(args.destination, args.source, files, text, make_progress(args.progress))
    return [args.destination]


def main(argv: list[str]) -> int:
    return run_transfer(build_parser(), argv, _publish)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
