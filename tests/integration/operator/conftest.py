"""The operator against the real apiserver: CRD installation, the operator in-process and as a
subprocess, and small readers of ModelDeployments and their children."""

from __future__ import annotations

import datetime
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelship import api, crd, rollout
from modelship.timestamps import format_time

from tests.support.cluster import Cluster, kubectl
from tests.support.prometheus import Prometheus, prometheus_url
from tests.support.store import BUCKET as STORE_BUCKET
from tests.support.store import MODEL_SECRET, STORE_SECRET, ObjectStore
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
# No test below needs a build to really run: an unpullable image keeps every build Job
# "running" until a test writes its outcome into the Job's status, as the Job controller would.
NEVER_PULLED_IMAGE = "registry.invalid/modelship/runtime-never-pulled:0"
OPERATOR_ENV = {
    # Host paths (file:// models and artifact store) are the node's disk: development only.
    "MODELSHIP_DEVELOPMENT": "true",
    "MODELSHIP_RUNTIME_IMAGE": NEVER_PULLED_IMAGE,
    "MODELSHIP_ARTIFACT_STORE": "file:///var/lib/modelship/test-artifacts",
    "MODELSHIP_METRICS_PORT": "0",
    "MODELSHIP_HEALTH_PORT": "0",
    # Short enough for the drift tests, long enough not to hide event-driven repair.
    "MODELSHIP_RESYNC_SECONDS": "20",
}


@pytest.fixture(scope="session")
def crd_installed(cluster: Cluster) -> str:
    """Server-side apply the generated CRD and wait until it is Established."""
    base = [kubectl(), "--kubeconfig", cluster.kubeconfig]
    subprocess.run(
        [*base, "apply", "--server-side", "--force-conflicts", "-f", str(crd.CRD_PATH)],
        check=True,
        capture_output=True,
    )
    name = f"{api.PLURAL}.{api.GROUP}"
    subprocess.run(
        [*base, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s"],
        check=True,
        capture_output=True,
    )
    return name


@pytest.fixture(scope="session")
def operator_environment(cluster: Cluster) -> Iterator[dict[str, str]]:
    """The operator's environment, also set in this process for the in-process runner."""
    env = {**OPERATOR_ENV, "KUBECONFIG": cluster.kubeconfig}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Models:
    """Reads and writes ModelDeployments and their children in one namespace."""

    api_client: client.ApiClient
    namespace: str

    # The client's generated types make every field Optional; tests read them as Any.
    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api_client)

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api_client)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api_client)

    def create(self, name: str, spec: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        model = spec.get("model") or {}
        if str(model.get("uri", "")).startswith(f"s3://{STORE_BUCKET}/"):
            # A model uploaded to the cluster's object store is read with the namespace's keys.
            spec = {**spec, "model": {"credentialsSecret": MODEL_SECRET, **model}}
        body = {
            "apiVersion": f"{api.GROUP}/{api.VERSION}",
            "kind": api.KIND,
            "metadata": {"name": name},
            "spec": spec,
        }
        # Strict like kubectl: unknown fields are an error, not a warning.
        kwargs: dict[str, str] = {"field_validation": "Strict"}
        if dry_run:
            kwargs["dry_run"] = "All"
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, api.PLURAL, body, **kwargs
        )
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, api.PLURAL, name
        )
        return result

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, api.PLURAL, name, {"spec": spec}
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, api.PLURAL, name
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def decision(self, name: str) -> str:
        """The action of the model's last decision ("" before any)."""
        return str((self.status(name).get("lastDecision") or {}).get("action", ""))

    def new_revision(self, name: str, *old: str, timeout: float = 30) -> str:
        """Wait until the model's current revision is none of `old` (a spec change reached
        status); that revision."""
        return str(
            wait_until(
                lambda: (
                    (r := self.status(name)["revisions"]["current"]["revision"]) not in old and r
                ),
                timeout=timeout,
                what=f"md/{name}: a revision other than {', '.join(old)} current",
            )
        )

    def act(self, name: str, action: str) -> None:
        """Ask for a one-off rollout action by annotation (promote, abort, retry)."""
        self.custom.patch_namespaced_custom_object(
            "modelship.io",
            "v1alpha1",
            self.namespace,
            "modeldeployments",
            name,
            {"metadata": {"annotations": {rollout.ACTION_ANNOTATION: action}}},
        )

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for cond in self.status(name).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None

    def ready_stable(self, name: str) -> str | None:
        """The stable revision once the model is Ready on it, else None."""
        status = self.status(name)
        stable = (status.get("revisions") or {}).get("stable") or {}
        return stable.get("revision") if status.get("phase") == "Ready" else None

    def wait_phase(self, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            md = self.get(name)
            st = md.get("status") or {}
            current = st.get("observedGeneration") == md["metadata"]["generation"]
            return st if current and st.get("phase") == phase else None

        return wait_until(reached, timeout=timeout, what=f"md/{name} phase {phase}")

    def jobs(self, name: str) -> list[Any]:
        items = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"app.kubernetes.io/instance={name}"
        ).items
        return [j for j in items if j.metadata.deletion_timestamp is None]

    def wait_jobs(self, name: str, count: int, timeout: float = 30) -> list[Any]:
        def counted() -> list[Any] | None:
            jobs = self.jobs(name)
            return jobs if len(jobs) == count else None

        return wait_until(counted, timeout=timeout, what=f"{count} build Job(s) of md/{name}")

    def finish_job(self, job_name: str, *, succeeded: bool) -> None:
        """Write a finished Job status, as the Job controller does when the pod ends."""

        def write() -> bool:
            # The Job controller writes startTime concurrently; keep the one it set.
            job = self.batch.read_namespaced_job(job_name, self.namespace)
            now = format_time(datetime.datetime.now(datetime.UTC))
            started = job.status.start_time
            start = format_time(started) if started else now
            if succeeded:
                conditions = [
                    _cond("SuccessCriteriaMet", "CompletionsReached", now),
                    _cond("Complete", "CompletionsReached", now),
                ]
                counts: dict[str, Any] = {"succeeded": 1, "completionTime": now}
            else:
                conditions = [
                    _cond("FailureTarget", "BackoffLimitExceeded", now),
                    _cond("Failed", "BackoffLimitExceeded", now),
                ]
                counts = {"failed": 3}
            body = {
                "metadata": {"resourceVersion": job.metadata.resource_version},
                "status": {
                    "startTime": start,
                    "conditions": conditions,
                    "active": 0,
                    "ready": 0,
                    **counts,
                },
            }
            self.batch.patch_namespaced_job_status(job_name, self.namespace, body)
            return True

        wait_until(write, timeout=20, what=f"Job {job_name} marked finished")

    def events(self, name: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(self.namespace).items
            if e.involved_object.name == name and e.involved_object.kind == api.KIND
        ]


def _cond(type_: str, reason: str, now: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": f"set by the test ({reason})",
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


@pytest.fixture
def models(api_client: client.ApiClient, namespace: str, crd_installed: str) -> Models:
    return Models(api_client, namespace)


@pytest.fixture
def kopf_operator(models: Models, operator_environment: dict[str, str]) -> Iterator[KopfRunner]:
    """The operator in this process (kopf's runner), watching only the test's namespace."""
    args = ["run", "--standalone", "--namespace", models.namespace, "-m", "modelship.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output[-3000:]
    assert runner.exit_code == 0, runner.output[-3000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    """`modelship-operator` as a subprocess, restartable and killable."""

    namespace: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("modelship-operator")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "--namespace", self.namespace],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or an OOM kill would leave things."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of the samples of `name` on its /metrics whose labels contain `labels`."""
        _, text = http_get(f"http://127.0.0.1:{self.env['MODELSHIP_METRICS_PORT']}/metrics")
        total = 0.0
        for match in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
            if labels in match.group(1):
                total += float(match.group(2))
        return total

    def api_writes(self) -> float:
        """API requests that change state (anything but GET) since the process started."""
        return sum(
            self.metric("modelship_api_requests_total", f'method="{method}"')
            for method in ("POST", "PATCH", "PUT", "DELETE")
        )


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


@pytest.fixture
def operator_process(
    models: Models, operator_environment: dict[str, str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    env = {
        **operator_environment,
        "MODELSHIP_METRICS_PORT": str(free_port()),
        "MODELSHIP_HEALTH_PORT": str(free_port()),
    }
    proc = OperatorProcess(models.namespace, env, tmp_path / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


DRAIN_SECONDS = 5


def serving_env() -> dict[str, str]:
    """The operator's settings for models that really build and serve: the real runtime image,
    production mode (no host path anywhere), builds published to the cluster's object store."""
    return {
        "MODELSHIP_RUNTIME_IMAGE": "docker.io/modelship/runtime:0.1.0",
        "MODELSHIP_DEVELOPMENT": "false",
        "MODELSHIP_ARTIFACT_STORE": ObjectStore.from_endpoints().artifact_store,
        "MODELSHIP_ARTIFACT_STORE_SECRET": STORE_SECRET,
        "MODELSHIP_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }


def serving_namespace(models: Models) -> None:
    """Make the test's namespace what a shared cluster's is: `restricted` Pod Security
    enforced, and the Secrets with the keys of the store and of the models."""
    ObjectStore.from_endpoints().share(models.core, models.namespace)


@pytest.fixture
def serving_operator(
    models: Models, operator_environment: dict[str, str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator as a process, with the real runtime image (not started yet)."""
    serving_namespace(models)
    yield from stopped_at_the_end(
        OperatorProcess(
            models.namespace,
            {**operator_environment, **serving_env(), "MODELSHIP_METRICS_PORT": str(free_port())},
            tmp_path / "operator.log",
        )
    )


@pytest.fixture
def analysing_operator(
    models: Models, operator_environment: dict[str, str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator as a process, with the real runtime image, reading the cluster's Prometheus
    (not started yet)."""
    serving_namespace(models)
    env = {**operator_environment, **serving_env(), "MODELSHIP_PROMETHEUS_URL": prometheus_url()}
    env["MODELSHIP_METRICS_PORT"] = str(free_port())
    yield from stopped_at_the_end(OperatorProcess(models.namespace, env, tmp_path / "operator.log"))


def analysed_spec(
    uri: str,
    *,
    replicas: int = 2,
    steps: tuple[int, ...] = (50, 100),
    interval_s: int = 20,
    **analysis: Any,
) -> dict[str, Any]:
    """A ModelDeployment spec whose canary steps are judged on Prometheus (a PodMonitor on):
    at most 5% failed answers over at least 20 requests, and the checks given."""
    return {
        "model": {"uri": uri},
        "replicas": replicas,
        "monitoring": {"podMonitor": True},
        "rollout": {
            "steps": list(steps),
            "interval": f"{interval_s}s",
            "analysis": {"maxErrorRate": 0.05, "minRequests": 20, **analysis},
        },
    }


def ready_and_scraped(models: Models, name: str) -> str:
    """Wait until the model is Ready and Prometheus scrapes its pods; its stable revision.

    A new namespace's PodMonitor reaches Prometheus' configuration only after the config
    reloader sees it, and the canary's pods are found through that configuration."""
    stable = wait_until(lambda: models.ready_stable(name), timeout=300, what=f"md/{name} Ready")
    prometheus = Prometheus.from_endpoints()
    selector = f'modelship_requests_total{{namespace="{models.namespace}", model="{name}"}}'
    wait_until(
        lambda: prometheus.query(selector), timeout=240, what=f"Prometheus scraping md/{name}"
    )
    return str(stable)


def stopped_at_the_end(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """Yield an operator process (for a fixture) and stop it afterwards, whatever happened."""
    try:
        yield operator
    finally:
        operator.stop()


def model_file(namespace: str, name: str, scale: float) -> str:
    """A linear ONNX model (x @ arange(12).reshape(4, 3) * scale) in the cluster's object store."""
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) * scale
    return ObjectStore.from_endpoints().upload_linear(namespace, name, weights)


@dataclass
class Sampler:
    """Reads one model every half second in a background thread (`sample`, in subclasses)
    until stopped: what a test watches while it drives something else."""

    models: Models
    name: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class ReadyWatch(Sampler):
    """Samples the Ready condition; remembers every sample that was not True."""

    not_ready: list[str] = field(default_factory=list)
    samples: int = 0

    def sample(self) -> None:
        try:
            ready = self.models.condition(self.name, "Ready")
        except ApiException as exc:
            self.not_ready.append(f"read failed: {exc.status}")
            return
        self.samples += 1
        if ready is None or ready["status"] != "True":
            self.not_ready.append(repr(ready))
