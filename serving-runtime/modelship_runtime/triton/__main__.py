"""`python -m modelship_runtime.triton`: lay out a Triton model repository, or check readiness."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from modelship_runtime.server.artifact import ArtifactError, resolve_model_file
from modelship_runtime.triton.config import (
    DynamicBatching,
    InstanceGroup,
    TritonModelConfig,
    write_model_repository,
)
from modelship_runtime.triton.readiness import wait_for_readiness


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m modelship_runtime.triton")
    sub = p.add_subparsers(dest="command", required=True)
    repo = sub.add_parser("repository", help="write <output>/<name>/config.pbtxt and the model")
    repo.add_argument("--model", required=True, help=".onnx file or a build directory")
    repo.add_argument("--name", required=True)
    repo.add_argument("--output", required=True, help="model repository root")
    repo.add_argument("--max-batch-size", type=int, default=0)
    repo.add_argument("--max-delay-ms", type=float, default=0.0)
    repo.add_argument("--kind", choices=["KIND_CPU", "KIND_GPU"], default="KIND_CPU")
    repo.add_argument("--instances", type=int, default=1)
    repo.add_argument("--threads", type=int, default=None)
    ready = sub.add_parser("ready", help="exit 0 once the model is ready, 1 at the deadline")
    ready.add_argument("--url", required=True, help="host:port")
    ready.add_argument("--model", required=True)
    ready.add_argument("--protocol", choices=["http", "grpc"], default="http")
    ready.add_argument("--deadline-s", type=float, default=60.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ready":
        answer = wait_for_readiness(
            args.url, args.model, deadline_s=args.deadline_s, protocol=args.protocol
        )
        print(answer.reason, file=sys.stdout if answer.ready else sys.stderr)
        return 0 if answer.ready else 1
    try:
        batching = (
            DynamicBatching(max_queue_delay_microseconds=int(args.max_delay_ms * 1000))
            if args.max_batch_size > 0 and args.max_delay_ms > 0
            else None
        )
        config = TritonModelConfig(
            name=args.name,
            max_batch_size=args.max_batch_size,
            dynamic_batching=batching,
            instance_group=InstanceGroup(kind=args.kind, count=args.instances),
            intra_op_threads=args.threads,
        )
        model_dir = write_model_repository(
            Path(args.output), config, resolve_model_file(Path(args.model))
        )
    except (ValidationError, ArtifactError, OSError) as exc:
        print(f"modelship-runtime triton: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    print(model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
