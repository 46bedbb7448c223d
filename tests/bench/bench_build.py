"""Benchmark of the build's variants on the 784-1024-1024-10 MLP: FP32 vs dynamic INT8 vs FP16.

Run with `make bench-build`. Two parts, one run:
1. the real build (`modelship-runtime build`'s pipeline, auto quantization) on a synthetic clustered
   dataset: which variant it selects, and each variant's accuracy drop;
2. a side-by-side latency comparison at batch 1 with one intra-op thread: rounds rotate the order of
   the variants, and the median per variant over rounds is reported with ratios to FP32.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from modelship_runtime.build.pipeline import run_build  # noqa: E402
from modelship_runtime.build.progress import SilentProgress  # noqa: E402
from modelship_runtime.build.runner import make_session  # noqa: E402
from modelship_runtime.build.settings import BuildSettings  # noqa: E402
from modelship_runtime.build.validation import TimingBudget  # noqa: E402

from tests.integration.build.models import clustered_mlp  # noqa: E402

DIMS = (784, 1024, 1024, 10)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_latency_ms(session: ort.InferenceSession, rows: np.ndarray, seconds: float) -> float:
    feeds = [{"x": rows[i : i + 1]} for i in range(len(rows))]
    for feed in feeds[:50]:
        session.run(None, feed)
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        feed = feeds[len(timings) % len(feeds)]
        started = time.perf_counter()
        session.run(None, feed)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant per round")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        work = Path(scratch)
        model, validation, _ = clustered_mlp(
            work, DIMS, rows=3000, seed=7, name="mlp784", noise=2.5
        )
        settings = BuildSettings(
            source=str(model),
            format="onnx",
            output=work / "out",
            validation_data=str(validation),
            quantization="auto",
            max_accuracy_drop=args.max_accuracy_drop,
            timing=TimingBudget(latency_seconds=2.0, max_runs=20000),
        )
        started = time.perf_counter()
        manifest = run_build(settings, SilentProgress())
        build_seconds = time.perf_counter() - started

        rows = np.load(validation)["x"][:256]
        files = {v.name: work / "out" / v.file for v in manifest.variants if v.file}
        sessions = {
            name: make_session(path, level="all", threads=1) for name, path in files.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        names = list(sessions)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(median_latency_ms(sessions[name], rows, args.seconds))

    latency = {name: statistics.median(values) for name, values in samples.items()}
    fp32 = latency["fp32"]
    int8 = latency.get("int8")
    result = {
        "command": "make bench-build",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "onnxruntime": ort.__version__},
        "buildSeconds": round(build_seconds, 1),
        "selected": manifest.selected,
        "variants": [
            {
                "name": v.name,
                "passed": v.passed,
                "reason": v.reason,
                "accuracy": v.metrics.accuracy if v.metrics else None,
                "accuracyDrop": v.metrics.accuracy_drop if v.metrics else None,
                "buildP50Ms": v.metrics.p50_ms if v.metrics else None,
                "benchMedianMs": latency.get(v.name),
                "speedupVsFp32": (fp32 / latency[v.name]) if v.name in latency else None,
            }
            for v in manifest.variants
        ],
        "int8SelectedAndTwiceAsFast": bool(
            manifest.selected == "int8" and int8 is not None and fp32 / int8 >= 2.0
        ),
    }
    print("| variant | passed | accuracy | drop | median ms (batch 1, 1 thread) | x FP32 |")
    print("|---|---|---|---|---|---|")
    for v in result["variants"]:
        acc = "" if v["accuracy"] is None else f"{v['accuracy']:.4f}"
        drop = "" if v["accuracyDrop"] is None else f"{v['accuracyDrop']:.4f}"
        ms = "" if v["benchMedianMs"] is None else f"{v['benchMedianMs']:.4f}"
        speed = "" if v["speedupVsFp32"] is None else f"{v['speedupVsFp32']:.2f}"
        print(f"| {v['name']} | {v['passed']} | {acc} | {drop} | {ms} | {speed} |")
    print(
        f"\nselected: {result['selected']}; INT8 selected and >= 2x FP32: "
        f"{result['int8SelectedAndTwiceAsFast']}; build took {result['buildSeconds']} s"
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["int8SelectedAndTwiceAsFast"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
