"""Benchmark of the runtime under overload: one server on 127.0.0.1 serving a model slow enough
to keep one core busy, flooded open-loop at 1x, 2x and 3x its capacity.

Run with `make bench-overload`. Reports, per load: answers by status, p50/p99 of the admitted
(200) requests, the median time to a 503, resident memory before and after, and the capacity
measured again right after the flood (the server must be back at full speed). Server pinned to
core 0, the load generator to core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.runtime.server_process import start_server  # noqa: E402
from tests.support.flood import (  # noqa: E402
    DEADLINE_MS,
    MAX_IN_FLIGHT,
    SERVER_ARGS,
    capacity,
    flood,
    infer_body,
    quantile,
    resident_mib,
    write_slow_model,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="flood length per load")
    parser.add_argument("--loads", default="1,2,3", help="multiples of the measured capacity")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_slow_model(Path(tmp) / "slow.onnx")
        server = start_server(path, "slow", Path(tmp), *SERVER_ARGS)
        try:
            if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(server.process.pid, {0})
            body = infer_body()
            host, port = "127.0.0.1", server.http_port
            base = capacity(host, port, "slow", body, seconds=5)
            print(f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
            print(
                f"- Machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}"
            )
            print("- Command: `make bench-overload`")
            print(
                f"- Server: `--execution thread --threads 1 --max-in-flight {MAX_IN_FLIGHT} "
                f"--deadline-ms {DEADLINE_MS}`, capacity {base:.0f} req/s (one client, "
                "back to back)"
            )
            print()
            print(
                "| load | sent | 200 | 503 | other | no answer | 200 p50 ms | 200 p99 ms "
                "| 503 median ms | RSS MiB before -> after | capacity after |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
            for multiple in (float(m) for m in args.loads.split(",")):
                rss = resident_mib(server.process.pid)
                result = asyncio.run(
                    flood(host, port, "slow", body, rate=multiple * base, seconds=args.seconds)
                )
                after = capacity(host, port, "slow", body, seconds=3)
                other = result.sent - result.statuses[200] - result.statuses[503]
                print(
                    f"| {multiple:g}x ({multiple * base:.0f}/s) | {result.sent} | "
                    f"{result.statuses[200]} | {result.statuses[503]} | "
                    f"{other - len(result.errors)} | {len(result.errors)} | "
                    f"{quantile(result.ok_s, 0.5) * 1e3:.1f} | {result.p99_ok_s() * 1e3:.1f} | "
                    f"{result.median_shed_s() * 1e3:.2f} | "
                    f"{rss:.0f} -> {resident_mib(server.process.pid):.0f} | "
                    f"{after / base:.2f}x |"
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
