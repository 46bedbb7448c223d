"""Where a request's time goes in the serving runtime (issue 16).

py-spy samples the modelship server (pinned to core 0, one intra-op thread, as in
bench_runtime.py) while bench_runtime's load generator (pinned to core 1) holds a closed loop on
it; each sample is given to the stage of its innermost frame that belongs to one (py-spy sees
Python frames: time in C code such as orjson, numpy or ONNX Runtime's kernels counts for the
Python function that called it). Prints a per-stage table for docs/benchmarks.md.

    make profile-runtime                         # mlp-fp32, JSON, concurrency 8, 10 s
    .venv/bin/python tests/bench/profile_runtime.py --body binary --batching --concurrency 64
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import bench_runtime as bench

# (stage, predicate on "function (file:line)"), tried from the innermost frame outwards.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("ONNX Runtime session.run", ("onnxruntime/",)),
    ("model wrapper (inputs, outputs)", ("modelship_runtime/server/model.py",)),
    ("tensor decode/encode (datatypes)", ("modelship_runtime/server/datatypes.py",)),
    # rest_codec.py: orjson parsing (json_object), lists to arrays (json_array, _integers,
    # _json_tensor, _binary_tensor), and the walk over the request (decode_request).
    (
        "request decode (JSON or binary to numpy)",
        (
            "json_object",
            "json_array",
            "_integers",
            "_any_float",
            "_json_tensor",
            "_binary_tensor",
            "_shape",
            "_flatten_strings",
            "decode_request",
        ),
    ),
    ("response encode (numpy to JSON or binary)", ("encode_response", "_json_data")),
    ("REST codec, other", ("modelship_runtime/server/rest_codec.py",)),
    ("dynamic batching", ("modelship_runtime/server/batching.py",)),
    ("prediction tokens, feedback", ("modelship_runtime/server/tokens.py", "feedback.py")),
    ("metrics (prometheus_client)", ("prometheus_client/", "modelship_runtime/server/metrics.py")),
    ("data plane (admission, deadlines)", ("modelship_runtime/server/dataplane.py",)),
    ("REST routes (rest.py: routing, headers, the client-left watch)", ("server/rest.py",)),
    (
        "HTTP server (http1.py or uvicorn; httptools)",
        ("modelship_runtime/server/http1.py", "uvicorn/", "httptools"),
    ),
    ("gRPC front end (protobuf to tensors)", ("modelship_runtime/server/grpc_frontend.py",)),
    ("gRPC server (grpc.aio, protobuf)", ("grpc/", "google/protobuf/")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop")),
]


# A thread blocked on a queue or a lock, which py-spy does not always recognise as idle (the
# event loop's executor thread waiting for work, for one).
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "Condition.wait (threading.py")


def stage_of(stack: list[str]) -> str:
    # py-spy --threads puts the thread's id and name first: frames are "function (file:line)".
    for frame in reversed(stack[2:]):
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def summarize(raw: str) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Samples per stage, and per innermost frame, from py-spy's collapsed-stack output."""
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        stack = stack_text.split(";")
        if stack[-1].startswith(IDLE_LEAVES):
            continue
        stages[stage_of(stack)] += int(count)
        leaves[stack[-1]] += int(count)
    return stages, leaves


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="mlp-fp32", choices=["tiny-fp32", "mlp-fp32"])
    p.add_argument("--body", default="json", choices=["json", "binary", "grpc"])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batching", action="store_true")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = p.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    work = bench.BENCH_DIR / "profile"
    work.mkdir(parents=True, exist_ok=True)
    model = bench.build_models(quantize=False)[args.model]
    port, grpc_port = bench.free_port(), bench.free_port()
    server = bench.Server("profiled modelship", "b", port, "/v2/models/m/infer", args.body)
    # gRPC only when it is what is profiled: its idle poller thread would otherwise sit in
    # every sample as a native call py-spy cannot tell from work.
    grpc_on = grpc_port if args.body == "grpc" else -1
    argv = bench.modelship_argv(model, port, grpc_on, batching=args.batching)
    bench.start_process(server, argv, {}, "/v2/health/ready")
    if server.process is None or server.note:
        print(server.note, file=sys.stderr)
        return 1
    try:
        payload = work / f"payload-{args.model}-{args.body}.bin"
        payload.write_bytes(bench.payload_for(args.model, args.body, server.path))
        raw = work / "samples.txt"
        # py-spy starts first and runs a second longer than the load, so it spans all of it.
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(server.process.pid), "--rate", str(args.rate),
             "--duration", str(int(args.seconds) + 2), "--format", "raw", "--output", str(raw),
             "--threads"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        load = bench.run_pinned(
            ["--loadgen", json.dumps({
                "mode": "closed", "port": grpc_port if args.body == "grpc" else port,
                "transport": "grpc" if args.body == "grpc" else "http", "payload": str(payload),
                "concurrency": args.concurrency, "warmup": 1.0, "seconds": args.seconds,
            })],
            timeout=args.seconds + 120,
        )  # fmt: skip
        _, errors = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode != 0:
            print(f"py-spy failed: {errors.decode()[-2000:]}", file=sys.stderr)
            return 1
    finally:
        bench.stop(server)
    stages, leaves = summarize(raw.read_text())
    total = sum(stages.values())
    mode = f"{args.body}{' +batch' if args.batching else ''}"
    print(
        f"\n{args.model}, {mode}, concurrency {args.concurrency}: {load['rps']:,.0f} req/s, "
        f"p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms; {total} samples at "
        f"{args.rate}/s (idle threads and threads waiting for work left out)\n"
    )
    print("| stage | share of samples |\n|---|---:|")
    for stage, count in stages.most_common():
        print(f"| {stage} | {100 * count / total:.1f}% |")
    print("\nInnermost frames:\n")
    for frame, count in leaves.most_common(12):
        print(f"- {100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
