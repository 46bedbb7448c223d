"""The node really runs containers: pods, Services, DNS, Jobs, garbage collection and OOM kills."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support.images import RUNTIME_IMAGE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

# A two-input Add model written with onnx.helper inside the pod, so the test
# needs nothing but the runtime image.
MAKE_MODEL = (
    "import onnx, onnx.helper as h; from onnx import TensorProto as T;"
    "g = h.make_graph([h.make_node('Add', ['a', 'b'], ['y'])], 'add',"
    " [h.make_tensor_value_info('a', T.FLOAT, [None, 2]),"
    " h.make_tensor_value_info('b', T.FLOAT, [None, 2])],"
    " [h.make_tensor_value_info('y', T.FLOAT, [None, 2])]);"
    "onnx.save(h.make_model(g, ir_version=10, opset_imports=[h.make_opsetid('', 17)]),"
    " '/models/add.onnx')"
)


def _container(name: str, command: list[str], **extra: Any) -> client.V1Container:
    return client.V1Container(
        name=name, image=RUNTIME_IMAGE, image_pull_policy="IfNotPresent", command=command, **extra
    )


def _job(name: str, command: list[str]) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never", containers=[_container("main", command)]
                )
            ),
        ),
    )


def _job_finished(batch: client.BatchV1Api, name: str, namespace: str) -> client.V1Job | None:
    job = batch.read_namespaced_job_status(name, namespace)
    return job if (job.status.succeeded or job.status.failed) else None


def _job_pod_log(core: client.CoreV1Api, job: str, namespace: str) -> str:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    assert pods, f"no pod for Job {job}"
    return str(core.read_namespaced_pod_log(pods[0].metadata.name, namespace))


def test_runtime_pod_is_ready_and_answers_through_a_service_from_another_pod(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, apps, batch = (
        client.CoreV1Api(api_client),
        client.AppsV1Api(api_client),
        client.BatchV1Api(api_client),
    )
    labels = {"app.kubernetes.io/name": "add"}
    serve = _container(
        "serve",
        [
            "sh",
            "-c",
            f'python3 -c "{MAKE_MODEL}" && exec modelship-runtime serve '
            "--model /models/add.onnx --name add --http-port 8080",
        ],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/v2/health/ready", port=8080),
            period_seconds=1,
        ),
        volume_mounts=[client.V1VolumeMount(name="models", mount_path="/models")],
    )
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="add", labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[serve],
                        volumes=[client.V1Volume(name="models", empty_dir={})],
                    ),
                ),
            ),
        ),
    )
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="add"),
            spec=client.V1ServiceSpec(
                selector=labels, ports=[client.V1ServicePort(port=8080, target_port="http")]
            ),
        ),
    )
    wait_until(
        lambda: (
            (apps.read_namespaced_deployment_status("add", namespace).status.ready_replicas or 0)
            >= 1
        ),
        timeout=300,
        what="the runtime Deployment to have a Ready pod",
    )
    url = f"http://add.{namespace}.svc.cluster.local:8080/v2/health/ready"
    probe = (
        f"import urllib.request as u; r = u.urlopen('{url}', timeout=10); print('status', r.status)"
    )
    batch.create_namespaced_job(namespace, _job("probe", ["python3", "-c", probe]))
    job = wait_until(
        lambda: _job_finished(batch, "probe", namespace), timeout=300, what="the probe Job"
    )
    log = _job_pod_log(core, "probe", namespace)
    assert job.status.succeeded == 1, log
    assert "status 200" in log


def test_job_completes_and_its_logs_are_readable(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    batch.create_namespaced_job(
        namespace, _job("hello", ["sh", "-c", "echo hello-from-the-node; exit 0"])
    )
    job = wait_until(
        lambda: _job_finished(batch, "hello", namespace), timeout=300, what="the Job to finish"
    )
    assert job.status.succeeded == 1
    assert "hello-from-the-node" in _job_pod_log(core, "hello", namespace)


def test_deleting_a_deployment_garbage_collects_its_pods(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    labels = {"app.kubernetes.io/name": "sleeper"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="sleeper"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        termination_grace_period_seconds=1,
                        containers=[_container("main", ["sleep", "3600"])],
                    ),
                ),
            ),
        ),
    )
    selector = "app.kubernetes.io/name=sleeper"

    def running() -> int:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return sum(1 for p in pods if p.status.phase == "Running")

    wait_until(lambda: running() == 2, timeout=300, what="two running sleeper pods")
    apps.delete_namespaced_deployment("sleeper", namespace, propagation_policy="Background")
    wait_until(
        lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items,
        timeout=300,
        what="the garbage collector to delete the pods",
    )


def test_pod_over_its_memory_limit_is_oom_killed_and_reported(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    hog = _container(
        "hog",
        ["python3", "-c", "b = bytearray(512 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"],
        resources=client.V1ResourceRequirements(limits={"memory": "64Mi", "cpu": "500m"}),
    )
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="hog"),
            spec=client.V1PodSpec(restart_policy="Never", containers=[hog]),
        ),
    )

    def terminated() -> client.V1ContainerStateTerminated | None:
        statuses = core.read_namespaced_pod_status("hog", namespace).status.container_statuses
        return statuses[0].state.terminated if statuses and statuses[0].state.terminated else None

    state = wait_until(terminated, timeout=300, what="the memory hog to terminate")
    assert state.reason == "OOMKilled"
    assert state.exit_code == 137
