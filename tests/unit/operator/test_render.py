"""Rendering of the build Job, serving Deployment and Service."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from modelship import api, naming, render
from modelship.settings import OperatorSettings
from modelship_runtime.server.cli import settings_from_args

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
    container = job["spec"]["template"]["spec"]["initContainers"][0]
    assert container["command"] == ["modelship-runtime", "build"]
    args = container["args"]
    assert _arg(args, "--source") == "file:///mnt/pvc/models/iris/model.joblib"
    assert _arg(args, "--format") == "sklearn"
    assert _arg(args, "--quantization") == "static-int8"
    assert _arg(args, "--calibration-data") == "s3://data/calib.npz"
    assert _arg(args, "--validation-data") == "file:///data/golden.npz"
    assert _arg(args, "--max-accuracy-drop") == "0.02"
    (publish,) = job["spec"]["template"]["spec"]["containers"]
    assert publish["command"] == ["modelship-runtime", "publish"]
    assert _arg(publish["args"], "--source") == render.OUTPUT_DIR
    assert _arg(publish["args"], "--destination") == f"s3://artifacts/ms/ml/fraud/{rev}/"
    assert _arg(args, "--summary-file") == "/dev/termination-log"
    assert json.loads(_arg(args, "--signature"))["inputs"][0]["shape"] == [-1, 4]
    assert "--allow-unsafe-formats" in args
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pvc-models"]["persistentVolumeClaim"]["claimName"] == "models"
    assert volumes["host-1"]["hostPath"]["path"] == "/data"


def test_the_store_and_the_model_credentials_never_share_a_container() -> None:
    settings = OperatorSettings(
        artifact_store="s3://store/builds", artifact_store_secret="store-keys-secret"
    )
    md = make_md(
        {
            "model": {"uri": "s3://models/fraud/model.onnx", "credentialsSecret": "model-keys"},
            "runtime": {"image": "me/custom-runtime:1"},
        }
    )
    job = render.render_build_job(md, "r", settings)["spec"]["template"]["spec"]
    (build,), (publish,) = job["initContainers"], job["containers"]
    # The build runs the model's code, in the image the user chose, with the model's keys only.
    assert build["image"] == "me/custom-runtime:1"
    assert build["envFrom"] == [{"secretRef": {"name": "model-keys"}}]
    assert all(m["name"] != "store-keys" for m in build["volumeMounts"])
    # The publish: the operator's image, the store's keys as files, nothing of the model's.
    assert publish["image"] == settings.runtime_image and "envFrom" not in publish
    assert _arg(publish["args"], "--credentials-dir") == render.STORE_KEYS_DIR
    store = next(v for v in job["volumes"] if v["name"] == "store-keys")
    assert store["secret"]["secretName"] == "store-keys-secret"
    assert {"name": "store-keys", "mountPath": render.STORE_KEYS_DIR, "readOnly": True} in publish[
        "volumeMounts"
    ]

    serving = render.render_deployment(
        md, naming.RevisionIdentity.of(md, "r"), settings, 1, digest=None
    )
    pod = serving["spec"]["template"]["spec"]
    (fetch,), (server,) = pod["initContainers"], pod["containers"]
    assert fetch["image"] == settings.runtime_image and "envFrom" not in fetch
    assert _arg(fetch["args"], "--credentials-dir") == render.STORE_KEYS_DIR
    assert server["image"] == "me/custom-runtime:1" and "envFrom" not in server
    assert all(m["name"] != "store-keys" for m in server["volumeMounts"])


def test_values_with_yaml_syntax_stay_data(settings: OperatorSettings) -> None:
    md = make_md({"model": {"uri": "https://h/x: {a} - b #c '\""}})
    args = render.render_build_job(md, "r", settings)["spec"]["template"]["spec"]["initContainers"]
    assert _arg(args[0]["args"], "--source") == "https://h/x: {a} - b #c '\""


def test_file_store_is_a_host_path() -> None:
    settings = OperatorSettings(artifact_store="file:///var/lib/ms")
    md = make_md()
    job = render.render_build_job(md, "abc", settings)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "artifacts", "mountPath": "/var/lib/ms", "readOnly": False} in pod[
        "containers"
    ][0]["volumeMounts"]
    dep = render.render_deployment(
        md, naming.RevisionIdentity.of(md, "abc"), settings, 1, digest=None
    )
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
    dep = render.render_deployment(
        md, naming.RevisionIdentity.of(md, "r1"), settings, 3, digest=None
    )
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
    assert server["resources"] == {
        "requests": {"cpu": 1, "memory": "256Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def _serve_args(md: api.ModelDeployment, settings: OperatorSettings) -> list[str]:
    dep = render.render_deployment(
        md, naming.RevisionIdentity.of(md, "r"), settings, 1, digest=None
    )
    args: list[str] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_request_limits_become_the_runtimes_admission_flags(settings: OperatorSettings) -> None:
    limits = {"maxInFlight": 4, "deadline": "1.5s", "retryAfterSeconds": 3}
    md = make_md({"model": {"uri": "s3://m/model.onnx"}, "runtime": {"requestLimits": limits}})
    args = _serve_args(md, settings)
    assert _arg(args, "--max-in-flight") == "4"
    assert _arg(args, "--deadline-ms") == "1500"
    assert _arg(args, "--retry-after-s") == "3"
    assert _arg(args, "--max-body-bytes") == str(64 * 1024 * 1024)


def test_default_request_limits_are_the_runtimes_own_defaults(settings: OperatorSettings) -> None:
    # The runtime's parser reads what the operator renders: same flags, same defaults.
    args = _serve_args(make_md({"model": {"uri": "s3://m/model.onnx"}}), settings)
    served = settings_from_args(args)
    default = settings_from_args(["--model", "m", "--name", "n"])
    assert (served.max_in_flight, served.deadline_ms, served.retry_after_s) == (
        default.max_in_flight,
        default.deadline_ms,
        default.retry_after_s,
    )
    assert served.max_body_bytes == default.max_body_bytes


def test_image_override(settings: OperatorSettings) -> None:
    md = make_md({"model": {"uri": "s3://m/model.onnx"}, "runtime": {"image": "me/rt:1"}})
    assert (
        render.render_deployment(md, naming.RevisionIdentity.of(md, "r"), settings, 1, digest=None)[
            "spec"
        ]["template"]["spec"]["containers"][0]["image"]
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


def _pods(md: api.ModelDeployment, settings: OperatorSettings) -> list[dict[str, Any]]:
    identity = naming.RevisionIdentity.of(md, "r")
    return [
        render.render_build_job(md, "r", settings)["spec"]["template"]["spec"],
        render.render_deployment(md, identity, settings, 1, digest=None)["spec"]["template"][
            "spec"
        ],
    ]


def test_every_pod_runs_as_the_restricted_pod_security_standard_asks() -> None:
    settings = OperatorSettings(artifact_store="s3://store/builds", run_as_user=1234)
    for pod in _pods(make_md(), settings):
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 1234,
            "runAsGroup": 1234,
            "fsGroup": 1234,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["automountServiceAccountToken"] is False
        assert not [v for v in pod["volumes"] if "hostPath" in v]
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, container["name"]
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert "memory" in container["resources"]["limits"]
        # Every writable place is an emptyDir with a size limit.
        for volume in pod["volumes"]:
            if "emptyDir" in volume:
                assert volume["emptyDir"]["sizeLimit"], volume


def test_resources_come_from_settings_and_the_spec_overrides_them_key_by_key() -> None:
    settings = OperatorSettings(
        artifact_store="s3://store/builds", build_memory_limit="6Gi", serving_cpu_request="50m"
    )
    md = make_md(
        {
            "model": {"uri": "s3://m/model.onnx"},
            "runtime": {"resources": {"limits": {"cpu": 2}}},
            "optimization": {"resources": {"requests": {"memory": "1Gi"}}},
        }
    )
    job, serving = _pods(md, settings)
    assert job["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"memory": "6Gi"},
    }
    # The spec's own resources are the server's; the fetch (the operator's step) keeps the defaults.
    (fetch,), (server,) = serving["initContainers"], serving["containers"]
    assert server["resources"] == {
        "requests": {"cpu": "50m", "memory": "256Mi"},
        "limits": {"memory": "2Gi", "cpu": 2},
    }
    assert fetch["resources"] == {
        "requests": {"cpu": "50m", "memory": "256Mi"},
        "limits": {"memory": "2Gi"},
    }
    # Build resources change how fast a build runs, not what it makes: the same revision.
    assert (
        md.spec.revision()
        == make_md(
            {
                "model": {"uri": "s3://m/model.onnx"},
                "runtime": {"resources": {"limits": {"cpu": 2}}},
            }
        ).spec.revision()
    )


def test_inputs_in_one_directory_share_one_mount(settings: OperatorSettings) -> None:
    md = make_md(
        {
            "model": {"uri": "file:///m/mlp/model.onnx"},
            "optimization": {"validation": {"dataset": "file:///m/mlp/golden.npz"}},
        }
    )
    container = render.render_build_job(md, "r", settings)["spec"]["template"]["spec"][
        "initContainers"
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
    deployment = render.render_deployment(md, identity, settings, 1, digest=None)
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


@pytest.mark.parametrize(
    ("own", "requests", "limits"),
    [
        pytest.param({}, {"cpu": "100m", "memory": "256Mi"}, {"memory": "2Gi"}, id="defaults"),
        pytest.param(
            {"limits": {"memory": "24Mi"}},
            {"cpu": "100m", "memory": "24Mi"},
            {"memory": "24Mi"},
            id="a limit below the default request lowers the request",
        ),
        pytest.param(
            {"requests": {"memory": "3Gi", "cpu": 4}},
            {"cpu": 4, "memory": "3Gi"},
            {"memory": "3Gi"},
            id="a request above the default limit raises the limit",
        ),
        pytest.param(
            {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}},
            {"cpu": "100m", "memory": "1Gi"},
            {"memory": "512Mi"},
            id="the spec's own contradiction is left for the apiserver to name",
        ),
        pytest.param(
            {"limits": {"memory": "0.5Gi", "cpu": "500m"}},
            {"cpu": "100m", "memory": "256Mi"},
            {"memory": "0.5Gi", "cpu": "500m"},
            id="within bounds: nothing moves",
        ),
    ],
)
def test_a_default_never_contradicts_the_specs_own_resources(
    own: dict[str, Any], requests: dict[str, Any], limits: dict[str, Any]
) -> None:
    settings = OperatorSettings(artifact_store="s3://store/builds")
    md = make_md({"model": {"uri": "s3://m/model.onnx"}, "runtime": {"resources": own}})
    assert render.serving_resources(md, settings) == {"requests": requests, "limits": limits}


@pytest.mark.parametrize("fmt", ["keras", "tensorflow"])
def test_tensorflow_formats_build_in_the_tensorflow_image(
    settings: OperatorSettings, fmt: str
) -> None:
    md = make_md({"model": {"uri": "s3://m/model.keras", "format": fmt}})
    job = render.render_build_job(md, "r", settings)
    build = job["spec"]["template"]["spec"]["initContainers"][0]
    assert build["image"] == settings.tensorflow_build_image
    # Loading a SavedModel or a Keras file runs no code of the file: no unsafe opt-in.
    assert "--allow-unsafe-formats" not in build["args"]
    assert "--signature" not in build["args"]
    # Serving and publishing never carry TensorFlow.
    (publish,) = job["spec"]["template"]["spec"]["containers"]
    assert publish["image"] == settings.runtime_image
    identity = naming.RevisionIdentity.of(md, "r")
    served = render.render_deployment(md, identity, settings, 1, digest=None)
    assert served["spec"]["template"]["spec"]["containers"][0]["image"] == settings.runtime_image
    # A model's own image override still wins for its build.
    custom = make_md(
        {"model": {"uri": "s3://m/m.keras", "format": fmt}, "runtime": {"image": "me/tf:1"}}
    )
    custom_job = render.render_build_job(custom, "r", settings)
    assert custom_job["spec"]["template"]["spec"]["initContainers"][0]["image"] == "me/tf:1"
