"""Rendering of child objects (build Job, serving Deployment, Service) from jinja2 templates."""

from __future__ import annotations

import base64
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml

from modelship import api, naming, traffic
from modelship.settings import OperatorSettings

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("modelship", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)

OUTPUT_DIR = "/work/out"
MODELS_DIR = "/models"
PVC_ROOT = "/mnt/pvc"
FEEDBACK_KEY_DIR = "/var/run/modelship/feedback"
FEEDBACK_KEY_FILE = "key"
# The runtime's default wait for in-flight requests after SIGTERM (--drain-timeout-s).
RUNTIME_DRAIN_TIMEOUT_SECONDS = 30


def render_template(template: str, **values: Any) -> dict[str, Any]:
    """Render one child from templates/ (for the modules that own other children)."""
    return _render(template, **values)


def _render(template: str, **values: Any) -> dict[str, Any]:
    text = _ENV.get_template(template).render(**values)
    obj = yaml.safe_load(text)
    if not isinstance(obj, dict):
        raise TypeError(f"template {template} did not render a mapping")
    return obj


@dataclass
class _Mounts:
    """Volumes needed to reach file:// and pvc:// URIs from inside a pod."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)

    def _add(self, volume: dict[str, Any], mount: dict[str, Any]) -> None:
        if all(v["name"] != volume["name"] for v in self.volumes):
            self.volumes.append(volume)
            self.mounts.append(mount)

    def localize(self, uri: str) -> str:
        """Return the URI as the pod sees it, mounting what it needs."""
        if uri.startswith("pvc://"):
            claim, _, path = uri.removeprefix("pvc://").partition("/")
            name = f"pvc-{claim}"[:63].rstrip("-")
            self._add(
                {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
                {"name": name, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True},
            )
            return f"file://{PVC_ROOT}/{claim}/{path}"
        if uri.startswith("file://"):
            directory = posixpath.dirname(uri.removeprefix("file://"))
            if any(m["mountPath"] == directory for m in self.mounts):
                return uri  # several inputs in one directory share one mount
            name = f"host-{len(self.volumes)}"
            self._add(
                {"name": name, "hostPath": {"path": directory, "type": "Directory"}},
                {"name": name, "mountPath": directory, "readOnly": True},
            )
        return uri

    def add_store(self, store: str, *, read_only: bool) -> None:
        """Mount a file:// artifact store (a hostPath) when the store is local."""
        if store.startswith("file://"):
            path = store.removeprefix("file://")
            self._add(
                {"name": "artifacts", "hostPath": {"path": path, "type": "DirectoryOrCreate"}},
                {"name": "artifacts", "mountPath": path, "readOnly": read_only},
            )


def _image(md: api.ModelDeployment, settings: OperatorSettings) -> str:
    return md.spec.runtime.image or settings.runtime_image


# Runs as root only in a file:// store (a hostPath the kubelet creates root-owned): makes this
# model's directory and hands it to the runtime's non-root user. Python is what the image has.
_PREPARE_STORE = (
    "import os, sys\n"
    "root, rel, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "path = root\n"
    "for part in rel.split('/'):\n"
    "    path = os.path.join(path, part)\n"
    "    os.makedirs(path, exist_ok=True)\n"
    "    os.chown(path, uid, uid)\n"
)


def _prepare_store(
    md: api.ModelDeployment, settings: OperatorSettings, mounts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not settings.artifact_store.startswith("file://"):
        return []
    root = settings.artifact_store.removeprefix("file://")
    return [
        {
            "name": "prepare-store",
            "image": _image(md, settings),
            "imagePullPolicy": settings.image_pull_policy,
            "command": ["python3", "-c", _PREPARE_STORE],
            "args": [root, f"{md.namespace}/{md.name}", str(settings.artifact_store_uid)],
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
            "volumeMounts": [m for m in mounts if m["name"] == "artifacts"],
        }
    ]


def _store_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    if settings.artifact_store_secret and settings.artifact_store.startswith("s3://"):
        return [{"secretRef": {"name": settings.artifact_store_secret}}]
    return []


def build_args(md: api.ModelDeployment, revision: str, settings: OperatorSettings) -> list[str]:
    """The `modelship-runtime build` arguments of a revision (without the volumes)."""
    return _build_args(md, revision, settings, _Mounts())


def _build_args(
    md: api.ModelDeployment, revision: str, settings: OperatorSettings, mounts: _Mounts
) -> list[str]:
    model, opt = md.spec.model, md.spec.optimization
    args = [
        "--source",
        mounts.localize(model.uri),
        "--format",
        model.format,
        "--output",
        OUTPUT_DIR,
        "--graph-optimization",
        opt.graph_optimization,
        "--quantization",
        opt.quantization,
    ]
    if model.sha256:
        args += ["--sha256", model.sha256]
    if model.signature is not None:
        signature = model.signature.model_dump(mode="json", by_alias=True)
        args += ["--signature", json.dumps(signature, separators=(",", ":"), sort_keys=True)]
    if opt.calibration_data:
        args += ["--calibration-data", mounts.localize(opt.calibration_data)]
    if opt.validation is not None:
        args += [
            "--validation-data",
            mounts.localize(opt.validation.dataset),
            "--validation-metric",
            opt.validation.metric,
            "--max-accuracy-drop",
            repr(opt.validation.max_accuracy_drop),
        ]
    if model.format != "onnx":
        # Converting a pickled estimator executes it; the user opted in by naming the format.
        args.append("--allow-unsafe-formats")
    args += [
        "--publish",
        naming.artifact_uri(settings.artifact_store, md.namespace, md.name, revision),
        "--summary-file",
        "/dev/termination-log",
    ]
    return args


def render_build_job(
    md: api.ModelDeployment, revision: str, settings: OperatorSettings
) -> dict[str, Any]:
    """Render the build Job of a revision."""
    mounts = _Mounts()
    args = _build_args(md, revision, settings, mounts)
    mounts.add_store(settings.artifact_store, read_only=False)
    mounts._add({"name": "out", "emptyDir": {}}, {"name": "out", "mountPath": "/work"})
    env_from = _store_env(settings)
    if md.spec.model.credentials_secret:
        env_from.append({"secretRef": {"name": md.spec.model.credentials_secret}})
    labels = {**naming.common_labels(md.name, "build"), naming.REVISION_LABEL: revision}
    return _render(
        "job.yaml.j2",
        name=naming.build_job_name(md.name, revision),
        namespace=md.namespace,
        labels=labels,
        annotations={naming.REVISION_ANNOTATION: revision},
        owner=naming.owner_reference(md),
        backoff_limit=settings.build_backoff_limit,
        deadline_seconds=settings.build_deadline_seconds,
        image=_image(md, settings),
        image_pull_policy=settings.image_pull_policy,
        args=args,
        env_from=env_from,
        volume_mounts=mounts.mounts,
        volumes=mounts.volumes,
        init_containers=_prepare_store(md, settings, mounts.mounts),
    )


def render_deployment(
    md: api.ModelDeployment,
    identity: naming.RevisionIdentity,
    settings: OperatorSettings,
    replicas: int,
) -> dict[str, Any]:
    """Render the serving Deployment of a built revision."""
    revision = identity.revision
    runtime = md.spec.runtime
    model_dir = f"{MODELS_DIR}/{revision}"
    fetch = _Mounts()
    fetch.add_store(settings.artifact_store, read_only=True)
    fetch._add({"name": "model", "emptyDir": {}}, {"name": "model", "mountPath": MODELS_DIR})
    serve_args = [
        "--model",
        model_dir,
        "--name",
        md.name,
        "--version",
        revision,
        "--http-port",
        str(naming.HTTP_PORT),
        "--grpc-port",
        str(naming.GRPC_PORT),
        "--max-batch-size",
        str(runtime.batching.max_batch_size),
        "--max-delay-ms",
        repr(runtime.batching.max_delay_ms),
        "--threads",
        str(runtime.threads),
        "--graph-optimization",
        md.spec.optimization.graph_optimization,
        # Signed prediction tokens: a label sent to any pod counts for the revision that made
        # the prediction (docs/runtime.md, "Accuracy across pods").
        "--feedback-key-file",
        f"{FEEDBACK_KEY_DIR}/{FEEDBACK_KEY_FILE}",
    ]
    resources: dict[str, Any] = {}
    if runtime.resources is not None:
        resources = runtime.resources.model_dump(mode="json", by_alias=True, exclude_none=True)
    return _render(
        "deployment.yaml.j2",
        name=identity.name,
        namespace=identity.namespace,
        labels=identity.labels,
        annotations={naming.REVISION_ANNOTATION: revision},
        owner=identity.owner,
        replicas=replicas,
        selector=identity.selector,
        pod_labels=identity.labels,
        drain_seconds=settings.drain_seconds,
        progress_deadline_seconds=md.spec.rollout.progress_deadline_seconds,
        # Covers the preStop drain, then the runtime's own wait for in-flight requests.
        grace_seconds=settings.drain_seconds + RUNTIME_DRAIN_TIMEOUT_SECONDS + 5,
        image=_image(md, settings),
        image_pull_policy=settings.image_pull_policy,
        fetch_args=[
            "--source",
            naming.artifact_uri(settings.artifact_store, md.namespace, md.name, revision),
            "--output",
            model_dir,
        ],
        env_from=_store_env(settings),
        fetch_mounts=fetch.mounts,
        serve_args=serve_args,
        http_port=naming.HTTP_PORT,
        grpc_port=naming.GRPC_PORT,
        resources=resources,
        volumes=fetch.volumes,
        feedback_key_dir=FEEDBACK_KEY_DIR,
        feedback_key_volume={
            "name": "feedback-key",
            "secret": {
                "secretName": naming.feedback_key_name(md.name),
                "items": [{"key": FEEDBACK_KEY_FILE, "path": FEEDBACK_KEY_FILE}],
                "defaultMode": 0o444,
            },
        },
    )


def render_feedback_key_secret(md: api.ModelDeployment, key: bytes) -> dict[str, Any]:
    """The Secret with the key that signs the model's prediction tokens (created once, never
    rotated by the operator: a new key would invalidate every token clients still hold)."""
    return _render(
        "feedback-key-secret.yaml.j2",
        name=naming.feedback_key_name(md.name),
        namespace=md.namespace,
        labels=naming.common_labels(md.name, "feedback"),
        owner=naming.owner_reference(md),
        data={FEEDBACK_KEY_FILE: base64.b64encode(key).decode()},
    )


def render_service(
    md: api.ModelDeployment, selector: dict[str, str], stable: str | None = None
) -> dict[str, Any]:
    """Render the model's Service (the entry point users call) over the pods of `selector`;
    `stable` names its stable revision in an annotation."""
    return _render(
        "service.yaml.j2",
        name=naming.service_name(md.name),
        namespace=md.namespace,
        labels=naming.common_labels(md.name, "server"),
        annotations={naming.STABLE_ANNOTATION: stable} if stable else {},
        owner=naming.owner_reference(md),
        selector=selector,
        http_port=naming.HTTP_PORT,
        grpc_port=naming.GRPC_PORT,
    )


def render_revision_service(identity: naming.RevisionIdentity) -> dict[str, Any]:
    """Render the Service of one revision (reaches that revision alone, e.g. to compare it)."""
    return _render(
        "service.yaml.j2",
        name=identity.name,
        namespace=identity.namespace,
        labels=identity.labels,
        annotations={},
        owner=identity.owner,
        selector=identity.selector,
        http_port=naming.HTTP_PORT,
        grpc_port=naming.GRPC_PORT,
    )


def render_routes(md: api.ModelDeployment, chosen: list[traffic.Backend]) -> list[dict[str, Any]]:
    """Render the model's routes (gatewayAPI router) over the chosen revision backends."""
    values = traffic.values(md, chosen)
    templates = {"HTTPRoute": "httproute.yaml.j2", "GRPCRoute": "grpcroute.yaml.j2"}
    return [_render(templates[kind], **values) for kind in traffic.route_kinds(md.spec)]


def render_pod_monitor(md: api.ModelDeployment) -> dict[str, Any]:
    """Render the PodMonitor that has Prometheus scrape the model's serving pods."""
    return _render(
        "podmonitor.yaml.j2",
        name=naming.monitoring_name(md.name),
        namespace=md.namespace,
        labels=naming.common_labels(md.name, "monitoring"),
        owner=naming.owner_reference(md),
        selector=naming.server_selector(md.name),
    )
