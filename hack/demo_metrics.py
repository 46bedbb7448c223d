"""The end of `make demo`: a little traffic to the demo model, then what Prometheus says of it.

Run by hack/demo.sh after the model is Ready: sends a bounded number of inferences from this
host to the model's Service (ClusterIPs are routed on the node), waits until Prometheus has
scraped them through the PodMonitor the operator created, and prints the request rate and the
p99 latency per revision.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

REQUESTS = 200
DEADLINE_S = 120.0


def _endpoints(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _query(prometheus: str, promql: str) -> list[dict[str, object]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)["data"]["result"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=Path, required=True)
    parser.add_argument("--service-ip", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()

    prometheus = _endpoints(args.endpoints).get("PROMETHEUS_URL")
    if not prometheus:
        print(f"no PROMETHEUS_URL in {args.endpoints}: the metrics plane is not running")
        return 0
    selector = f'namespace="{args.namespace}", model="{args.model}"'
    # A rate needs a scrape before the traffic and one after: wait until Prometheus scrapes the
    # pod (the PodMonitor is new, its config takes a reload), then send.
    deadline = time.monotonic() + DEADLINE_S
    while not _query(prometheus, f"modelship_ready{{{selector}}}"):
        if time.monotonic() > deadline:
            print(f"Prometheus has not scraped {args.namespace}/{args.model} yet: no figures")
            return 0
        time.sleep(2)  # a poll interval of a CLI, not a test wait
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [5.9, 3.0, 5.1, 1.8]}
            ]
        }
    ).encode()
    url = f"http://{args.service_ip}:8080/v2/models/{args.model}/infer"
    for _ in range(REQUESTS):
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    print(f"sent {REQUESTS} inferences to {url}")

    queries = {
        "requests per second": "sum by (revision) "
        f"(rate(modelship_requests_total{{{selector}}}[1m]))",
        "p99 latency (s)": "histogram_quantile(0.99, sum by (revision, le) "
        f"(rate(modelship_request_duration_seconds_bucket{{{selector}}}[1m])))",
    }
    for what, promql in queries.items():
        deadline = time.monotonic() + DEADLINE_S
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            result = _query(prometheus, promql)
            # Wait for a scrape that saw the traffic (a rate above zero), not just any series.
            if any(float(s["value"][1]) > 0 for s in result):  # type: ignore[index]
                break
            time.sleep(2)  # a poll interval of a CLI, not a test wait
        print(f"  {what}: {promql}")
        for series in result or [{"metric": {}, "value": [0, "no data"]}]:
            labels = series["metric"]
            value = series["value"][1]  # type: ignore[index]
            print(f"    revision {labels.get('revision', '?')}: {value}")  # type: ignore[attr-defined]
    print(f"Prometheus HTTP API: {prometheus}/api/v1/query (alerts: {prometheus}/api/v1/alerts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
