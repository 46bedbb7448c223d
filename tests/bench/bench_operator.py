"""Operator benchmark: N ModelDeployments at once -> time to reconcile, RSS, API calls, idempotence.

Run with `make bench-operator` (or `python tests/bench/bench_operator.py --n 100 1000`). Needs the
local control plane; no pod runs (a ResourceQuota of zero pods keeps the build Jobs pending).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kubernetes import client, config, watch  # noqa: E402
from modelship import api, crd  # noqa: E402

from tests.support import cluster as cluster_support  # noqa: E402

CONCURRENCY = 50
SPEC = {"model": {"uri": "s3://models/bench/model.onnx"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str, label_filter: str = "") -> float:
    total = 0.0
    pattern = rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$"
    for match in re.finditer(pattern, text, re.MULTILINE):
        if label_filter in (match.group(1) or ""):
            total += float(match.group(2))
    return total


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Operator:
    namespace: str
    kubeconfig: str
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    peak_kib: int = 0
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "MODELSHIP_METRICS_PORT": str(self.metrics_port),
            "MODELSHIP_HEALTH_PORT": "0",
            "MODELSHIP_RESYNC_SECONDS": "3600",
            # The default file:// artifact store is a host path: development mode.
            "MODELSHIP_DEVELOPMENT": "true",
        }
        exe = Path(sys.executable).with_name("modelship-operator")
        log = open(f"/tmp/bench-operator-{self.namespace}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(exe), "--quiet", "--namespace", self.namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._stop.clear()
        self.peak_kib = 0
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        wait_for(self._metrics_up, 30, "the operator's /metrics")

    def _metrics_up(self) -> bool:
        try:
            return "modelship_reconcile" in scrape(self.metrics_port)
        except OSError:
            return False

    def _sample(self) -> None:
        assert self.proc is not None
        while not self._stop.wait(0.1):
            try:
                self.peak_kib = max(self.peak_kib, rss_kib(self.proc.pid, "VmHWM"))
            except OSError:
                return

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        assert self.proc is not None
        return rss_kib(self.proc.pid)

    def metrics(self) -> str:
        return scrape(self.metrics_port)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reconciled(md: dict[str, Any]) -> bool:
    status = md.get("status") or {}
    return (
        status.get("observedGeneration") == md["metadata"].get("generation")
        and status.get("phase") == "Building"
    )


@dataclass
class Progress:
    """When each CR was created, first showed a current status, and got its build Job."""

    created: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    reported: float = 0.0


def follow(list_fn: Any, args: tuple[Any, ...], on_object: Any, until: Any) -> None:
    """Watch a collection (re-listing after any error) until `until()` holds."""
    while not until():
        try:
            stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(list_fn, *args, timeout_seconds=60):
                if event["type"] in ("ADDED", "MODIFIED"):
                    on_object(event["object"])
                if until():
                    stream.stop()
        except Exception as exc:
            print(f"  watch restarted after {exc!r}", file=sys.stderr)


def watch_progress(
    api_client: client.ApiClient, namespace: str, n: int, progress: Progress
) -> None:
    """Record when each CR first shows a current status and when its Job appears."""
    done, jobs, stop = progress.done, progress.jobs, progress.stop
    custom = client.CustomObjectsApi(api_client)
    batch = client.BatchV1Api(api_client)

    def on_job(job: Any) -> None:
        owner = (job.metadata.labels or {}).get("app.kubernetes.io/instance")
        if owner and owner not in jobs:
            jobs[owner] = time.monotonic()

    def on_md(md: dict[str, Any]) -> None:
        name = md["metadata"]["name"]
        if name not in done and reconciled(md):
            done[name] = time.monotonic()

    threading.Thread(
        target=follow,
        args=(
            batch.list_namespaced_job,
            (namespace,),
            on_job,
            lambda: stop.is_set() or len(jobs) >= n,
        ),
        daemon=True,
    ).start()
    follow(
        custom.list_namespaced_custom_object,
        (api.GROUP, api.VERSION, namespace, api.PLURAL),
        on_md,
        lambda: stop.is_set() or len(done) >= n,
    )


def operator_writes(api_client: client.ApiClient, namespace: str) -> dict[str, str]:
    """Fingerprint of everything the operator (or kopf on its behalf) wrote in a namespace.

    ModelDeployments: their resourceVersion (only the operator and kopf write them here).
    Jobs: the operator's managedFields entries (the Job controller updates their status too).
    """
    custom: Any = client.CustomObjectsApi(api_client)
    batch: Any = client.BatchV1Api(api_client)
    mds = custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)
    versions = {
        f"md/{m['metadata']['name']}": m["metadata"]["resourceVersion"] for m in mds["items"]
    }
    for job in batch.list_namespaced_job(namespace).items:
        ours = [
            f"{m.operation}@{m.time}"
            for m in job.metadata.managed_fields or []
            if m.manager == "modelship-operator"
        ]
        versions[f"job/{job.metadata.name}"] = ",".join(ours)
    return versions


def apiserver_requests(kubeconfig: str) -> float:
    """Total requests the apiserver served for the resources the operator touches."""
    text = subprocess.run(
        [cluster_support.kubectl(), "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = 0.0
    for match in re.finditer(r"^apiserver_request_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        labels = match.group(1)
        if re.search(
            r'resource="(modeldeployments|jobs|deployments|services|events|pods)"', labels
        ):
            total += float(match.group(2))
    return total


def run_one(api_client: client.ApiClient, kubeconfig: str, n: int) -> dict[str, Any]:
    core = client.CoreV1Api(api_client)
    namespace = f"bench-op-{n}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    # No build pod may start, node or not: the benchmark measures the operator alone.
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-pods"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
        ),
    )
    operator = Operator(namespace, kubeconfig)
    try:
        operator.start()
        rss_before = operator.rss()
        server_before = apiserver_requests(kubeconfig)
        progress = Progress()
        created, done, jobs, stop = progress.created, progress.done, progress.jobs, progress.stop
        watcher = threading.Thread(
            target=watch_progress, args=(api_client, namespace, n, progress), daemon=True
        )
        watcher.start()
        custom = client.CustomObjectsApi(api_client)

        def create(i: int) -> None:
            name = f"md-{i:05d}"
            body = {
                "apiVersion": f"{api.GROUP}/{api.VERSION}",
                "kind": api.KIND,
                "metadata": {"name": name},
                "spec": SPEC,
            }
            created[name] = time.monotonic()
            custom.create_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, body
            )

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(create, range(n)))
        created_all = time.monotonic() - start

        def all_done() -> bool:
            now = time.monotonic()
            if now - progress.reported >= 10:
                progress.reported = now
                print(
                    f"  N={n}: {len(done)} with status, {len(jobs)} with a Job after "
                    f"{now - start:.0f}s",
                    file=sys.stderr,
                )
            return len(done) >= n and len(jobs) >= n

        wait_for(
            all_done,
            timeout=max(120, n * 0.5),
            what=f"{n} reconciled ModelDeployments",
            interval=0.2,
        )
        total = max(*done.values(), *jobs.values()) - start
        cpu = operator.cpu_seconds()
        stop.set()
        per_cr = sorted(max(done[k], jobs[k]) - created[k] for k in created)
        text = operator.metrics()
        operator_calls = metric_sum(text, "modelship_api_requests_total")
        server_calls = apiserver_requests(kubeconfig) - server_before
        peak = operator.peak_kib
        rss_after = operator.rss()

        # Idempotence: restart with N present; nothing may be written.
        versions = operator_writes(api_client, namespace)
        operator.stop()
        operator.start()
        wait_for(
            lambda: (
                metric_sum(
                    operator.metrics(), "modelship_reconcile_duration_seconds_count", "resume"
                )
                >= n
            ),
            timeout=max(120, n * 0.5),
            what="the restarted operator resuming every CR",
            interval=0.5,
        )
        restart_text = operator.metrics()
        restart_writes = sum(
            float(m.group(2))
            for m in re.finditer(
                r'^modelship_api_requests_total\{method="(\w+)"[^}]*\} (\S+)$',
                restart_text,
                re.MULTILINE,
            )
            if m.group(1) != "GET"
        )
        after = operator_writes(api_client, namespace)
        changed = sorted(k for k in versions if after.get(k) != versions[k])
        return {
            "n": n,
            "create_seconds": round(created_all, 2),
            "all_reconciled_seconds": round(total, 2),
            "per_cr_p50_seconds": round(statistics.median(per_cr), 3),
            "per_cr_p99_seconds": round(per_cr[min(len(per_cr) - 1, int(len(per_cr) * 0.99))], 3),
            "operator_cpu_seconds": round(cpu, 2),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_peak_mib": round(peak / 1024, 1),
            "rss_after_mib": round(rss_after / 1024, 1),
            "rss_per_cr_kib": round((rss_after - rss_before) / n, 1),
            "operator_api_calls_per_cr": round(operator_calls / n, 2),
            "apiserver_requests_per_cr": round(server_calls / n, 2),
            "writes_after_restart_operator": int(restart_writes),
            "objects_changed_after_restart": len(changed),
            "changed_examples": changed[:5],
        }
    finally:
        operator.stop()
        core.delete_namespace(namespace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    cluster = cluster_support.acquire()
    try:
        subprocess.run(
            [
                cluster_support.kubectl(),
                "--kubeconfig",
                cluster.kubeconfig,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(crd.CRD_PATH),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                cluster_support.kubectl(),
                "--kubeconfig",
                cluster.kubeconfig,
                "wait",
                "--for=condition=Established",
                f"crd/{api.PLURAL}.{api.GROUP}",
            ],
            check=True,
            capture_output=True,
        )
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=cluster.kubeconfig
        )
        api_client.configuration.connection_pool_maxsize = CONCURRENCY + 10
        api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = CONCURRENCY + 10
        results = [run_one(api_client, cluster.kubeconfig, n) for n in args.n]
    finally:
        cluster_support.release(cluster)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# bench-operator {when}, nproc={os.cpu_count()}, {cpu}")
    keys = list(results[0])
    print("| metric | " + " | ".join(f"N={r['n']}" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in keys[1:]:
        print(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
