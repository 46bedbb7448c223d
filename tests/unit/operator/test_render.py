"""Rendering of the build Job, serving Deployment and Service."""

from __future__ import annotations

import base64
import json

from modelship import naming, render
from modelship.settings import OperatorSettings

from .conftest import make_md

SKLEARN = {
    "model": {
        "uri": "pvc://models/iris/model.joblib",
        "format": "sklearn",
        "credentialsSecret": "s3-creds",
        "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]},
    },
    "optimization": {
        "quantization": "static-int8",
        "calibrationData": "s3://data/calib.npz",
        "validation": {"dataset": "file:///data/golden.npz", "maxAccuracyDrop": 0.02},
    },
}


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_build_job_runs_the_build_contract(settings: OperatorSettings) -> None:
    md = make_md(SKLEARN)
    rev = md.spec.revision()
    job = render.render_build_job(md, rev, settings)
    assert job["metadata"]["name"] == f"fraud-build-{rev}"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == naming.MANAGED_BY
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelship-runtime", "build"]
    args = container["args"]
    assert _arg(args, "--source") == "file:///mnt/pvc/models/iris/model.joblib"
    assert _arg(args, "--format") == "sklearn"
    assert _arg(args, "--quantization") == "static-int8"
    assert _arg(args, "--calibration-data") == "s3://data/calib.npz"
    assert _arg(args, "--validation-data") == "file:///data/golden.npz"
    assert _arg(args, "--max-accuracy-drop") == "0.02"
    assert _arg(args, "--publish") == f"s3://artifacts/ms/ml/fraud/{rev}/"
    assert _arg(args, "--summary-file") == "/dev/termination-log"
    assert json.loads(_arg(args, "--signature"))["inputs"][0]["shape"] == [-1, 4]
    assert "--allow-unsafe-formats" in args
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pvc-models"]["persistentVolumeClaim"]["claimName"] == "models"
    assert volumes["host-1"]["hostPath"]["path"] == "/data"


def test_values_with_yaml_syntax_stay_data(settings: OperatorSettings) -> None:
    md = make_md({"model": {"uri": "https://h/x: {a} - b #c '\""}})
    args = render.render_build_job(md, "r", settings)["spec"]["template"]["spec"]["containers"]
    assert _arg(args[0]["args"], "--source") == "https://h/x: {a} - b #c '\""


def test_file_store_is_a_host_path() -> None:
    settings = OperatorSettings(artifact_store="file:///var/lib/ms")
    md = make_md()
    job = render.render_build_job(md, "abc", settings)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "artifacts", "mountPath": "/var/lib/ms", "readOnly": False} in pod[
        "containers"
    ][0]["volumeMounts"]
    dep = render.render_deployment(md, naming.RevisionIdentity.of(md, "abc"), settings, 1)
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    assert init["args"] == [
        "--source",
        "file:///var/lib/ms/ml/fraud/abc/",
        "--output",
        "/models/abc",
    ]


def test_deployment_serves_the_revision_and_never_drops_ready_pods(
    settings: OperatorSettings,
) -> None:
    spec = {
        "model": {"uri": "s3://m/model.onnx"},
        "runtime": {"threads": 2, "resources": {"requests": {"cpu": 1, "memory": "256Mi"}}},
        "replicas": 3,
    }
    md = make_md(spec)
    dep = render.render_deployment(md, naming.RevisionIdentity.of(md, "r1"), settings, 3)
    assert dep["metadata"]["name"] == "fraud-r1"
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert dep["spec"]["selector"]["matchLabels"] == {
        **naming.server_selector("fraud"),
        naming.REVISION_LABEL: "r1",
        # Pods of the single-Deployment layout carry the revision label too: never selected.
        naming.DEPLOYMENT_LABEL: "fraud-r1",
    }
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"][naming.REVISION_LABEL] == "r1"
    # A stopping pod answers through the endpoint propagation, and its grace period covers
    # that drain plus the runtime's wait for in-flight requests.
    assert pod["spec"]["containers"][0]["lifecycle"] == {
        "preStop": {"sleep": {"seconds": settings.drain_seconds}}
    }
    assert pod["spec"]["terminationGracePeriodSeconds"] > settings.drain_seconds + 30
    server = pod["spec"]["containers"][0]
    assert server["command"] == ["modelship-runtime", "serve"]
    assert _arg(server["args"], "--model") == "/models/r1"
    assert _arg(server["args"], "--threads") == "2"
    assert server["resources"] == {"requests": {"cpu": 1, "memory": "256Mi"}}
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_image_override(settings: OperatorSettings) -> None:
    md = make_md({"model": {"uri": "s3://m/model.onnx"}, "runtime": {"image": "me/rt:1"}})
    assert (
        render.render_deployment(md, naming.RevisionIdentity.of(md, "r"), settings, 1)["spec"][
            "template"
        ]["spec"]["containers"][0]["image"]
        == "me/rt:1"
    )


def test_model_service_selects_the_given_pods_and_each_revision_has_its_own() -> None:
    md = make_md()
    identity = naming.RevisionIdentity.of(md, "r1")
    svc = render.render_service(md, identity.selector)
    assert svc["metadata"]["name"] == "fraud"
    assert svc["spec"]["selector"][naming.REVISION_LABEL] == "r1"
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080, 8081]
    own = render.render_revision_service(identity)
    assert own["metadata"]["name"] == "fraud-r1"
    assert own["spec"]["selector"] == svc["spec"]["selector"]
    assert own["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_file_store_is_prepared_for_the_non_root_runtime() -> None:
    settings = OperatorSettings(artifact_store="file:///var/lib/ms", artifact_store_uid=1234)
    job = render.render_build_job(make_md(), "abc", settings)
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    assert init["args"] == ["/var/lib/ms", "ml/fraud", "1234"]
    assert init["securityContext"]["runAsUser"] == 0
    assert [m["name"] for m in init["volumeMounts"]] == ["artifacts"]


def test_s3_store_needs_no_preparation(settings: OperatorSettings) -> None:
    job = render.render_build_job(make_md(), "abc", settings)
    assert job["spec"]["template"]["spec"]["initContainers"] == []


def test_inputs_in_one_directory_share_one_mount(settings: OperatorSettings) -> None:
    md = make_md(
        {
            "model": {"uri": "file:///m/mlp/model.onnx"},
            "optimization": {"validation": {"dataset": "file:///m/mlp/golden.npz"}},
        }
    )
    container = render.render_build_job(md, "r", settings)["spec"]["template"]["spec"][
        "containers"
    ][0]
    paths = [m["mountPath"] for m in container["volumeMounts"]]
    assert paths.count("/m/mlp") == 1 and len(paths) == len(set(paths))


def test_pod_monitor_scrapes_every_serving_pod_of_the_model() -> None:
    md = make_md({"model": {"uri": "s3://m/model.onnx"}, "monitoring": {"podMonitor": True}})
    pm = render.render_pod_monitor(md)
    assert (pm["apiVersion"], pm["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert (pm["metadata"]["name"], pm["metadata"]["namespace"]) == ("fraud", "ml")
    assert pm["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    # Every revision's pods (stable and canary alike), none of another model's.
    assert pm["spec"]["selector"]["matchLabels"] == naming.server_selector("fraud")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "honorLabels": True}


def test_serving_pods_mount_the_token_key_and_the_secret_holds_it(
    settings: OperatorSettings,
) -> None:
    md = make_md()
    identity = naming.RevisionIdentity.of(md, md.spec.revision())
    deployment = render.render_deployment(md, identity, settings, 1)
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "feedback-key"]
    assert (
        volume["secret"]["secretName"] == naming.feedback_key_name("fraud") == "fraud-feedback-key"
    )
    server = pod["containers"][0]
    key_file = _arg(server["args"], "--feedback-key-file")
    mount = next(m for m in server["volumeMounts"] if m["name"] == "feedback-key")
    assert key_file == f"{mount['mountPath']}/key" and mount["readOnly"] is True
    secret = render.render_feedback_key_secret(md, b"k" * 32)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert base64.b64decode(secret["data"]["key"]) == b"k" * 32
