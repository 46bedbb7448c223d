"""Command line of `modelship-runtime build`: arguments in; a build, a summary, an exit code out."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from modelship_runtime.build.conversion import FORMATS
from modelship_runtime.build.errors import BuildError
from modelship_runtime.build.fetching import RetryPolicy
from modelship_runtime.build.objectstore import CREDENTIALS_DIR_ENV
from modelship_runtime.build.pipeline import run_build
from modelship_runtime.build.progress import JsonProgress, make_progress
from modelship_runtime.build.settings import BuildSettings
from modelship_runtime.build.signature import parse_signature
from modelship_runtime.build.summary import summarize_failure, summarize_success, write_summary
from modelship_runtime.build.validation import TimingBudget

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class UsageError(BuildError):
    stage = "usage"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the cause, like every other failure (argparse would print the usage too).
        raise UsageError(f"usage error: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="modelship-runtime build",
        description="Fetch a model, convert it to ONNX, build optimized variants, validate each "
        "against the original, select the fastest that passes, and publish it with a manifest.",
    )
    p.add_argument(
        "--source", required=True, help="file://, http(s)://, s3://, gs:// URI or a mounted path"
    )
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--output", required=True, type=Path, help="directory for manifest.json and model files"
    )
    p.add_argument("--sha256", help="expected sha256 of the source file")
    p.add_argument(
        "--allow-unsafe-formats",
        action="store_true",
        help="allow formats whose loading executes code (pickle, joblib, TorchScript)",
    )
    p.add_argument(
        "--signature", help='JSON: {"inputs":[{"name":"x","datatype":"FP32","shape":[-1,30]}]}'
    )
    p.add_argument(
        "--graph-optimization", default="all", choices=["none", "basic", "extended", "all"]
    )
    p.add_argument(
        "--quantization",
        default="auto",
        choices=["none", "dynamic-int8", "static-int8", "fp16", "auto"],
    )
    p.add_argument("--calibration-data", help=".npz URI with representative inputs (static INT8)")
    p.add_argument("--validation-data", help=".npz URI with inputs and labels (y)")
    p.add_argument("--validation-metric", choices=["accuracy", "f1", "rmse"])
    p.add_argument("--max-accuracy-drop", type=float, default=0.01)
    p.add_argument(
        "--publish", help="also publish the build to s3://bucket/prefix/ or file:///path/"
    )
    p.add_argument(
        "--summary-file", type=Path, help="compact JSON summary, written on success and failure"
    )
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "json", "none"])
    p.add_argument(
        "--credentials-dir",
        help=f"mounted Secret with AWS_* keys as files (or ${CREDENTIALS_DIR_ENV})",
    )
    p.add_argument(
        "--timing-seconds", type=float, default=1.0, help="latency measuring time per variant"
    )
    return p


def _summary_path(argv: list[str]) -> Path | None:
    """Find --summary-file even when the rest of the arguments do not parse."""
    for i, arg in enumerate(argv):
        if arg == "--summary-file" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--summary-file="):
            return Path(arg.split("=", 1)[1])
    return None


def _fail(message: str, summary: Path | None, code: int) -> int:
    line = " ".join(message.split())
    print(f"modelship-runtime build: {line}", file=sys.stderr)
    if summary is not None:
        try:
            write_summary(summary, summarize_failure(line))
        except OSError as exc:
            print(
                f"modelship-runtime build: cannot write summary {summary}: {exc}", file=sys.stderr
            )
    return code


def main(argv: list[str]) -> int:

    summary = _summary_path(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.credentials_dir:
            os.environ[CREDENTIALS_DIR_ENV] = args.credentials_dir
        settings = BuildSettings(
            source=args.source,
            format=args.format,
            output=args.output,
            sha256=args.sha256,
            allow_unsafe_formats=args.allow_unsafe_formats,
            signature=parse_signature(args.signature) if args.signature else None,
            graph_optimization=args.graph_optimization,
            quantization=args.quantization,
            calibration_data=args.calibration_data,
            validation_data=args.validation_data,
            validation_metric=args.validation_metric,
            max_accuracy_drop=args.max_accuracy_drop,
            publish=args.publish,
            summary_file=args.summary_file,
            progress=args.progress,
            timing=TimingBudget(latency_seconds=args.timing_seconds),
            retry=RetryPolicy.from_env(),
        )
    except BuildError as exc:
        return _fail(str(exc), summary, EXIT_USAGE)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "--" + ".".join(str(p) for p in first["loc"]).replace("_", "-")
        return _fail(f"usage error: {where}: {first['msg']}", summary, EXIT_USAGE)

    progress = make_progress(settings.progress)
    try:
        manifest = run_build(settings, progress)
    except BuildError as exc:
        return _fail(str(exc), summary, EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", summary, EXIT_FAILED)
    except Exception as exc:
        if isinstance(progress, JsonProgress):
            progress.log("internal-error", traceback=traceback.format_exc())
        else:
            traceback.print_exc()
        return _fail(f"internal error: {type(exc).__name__}: {exc}", summary, EXIT_INTERNAL)
    if summary is not None:
        write_summary(summary, summarize_success(manifest))
    print(
        f"built {manifest.selected} ({manifest.selected_file}) into {settings.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
