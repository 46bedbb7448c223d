"""Rendering of child objects (build Job, serving Deployment, Service) from jinja2 templates."""

from __future__ import annotations

import base64
import json
import posixpath
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jinja2
import yaml

from modelship import api, durations, naming, traffic
from modelship.settings import QUANTITY, OperatorSettings

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
# Where the store's Secret is mounted in the containers that publish or fetch builds.
STORE_KEYS_DIR = "/var/run/modelship/store"
# A serving pod's /tmp: nothing of the runtime writes there, only what libraries may.
TMP_LIMIT = "256Mi"
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


def _build_image(md: api.ModelDeployment, settings: OperatorSettings) -> str:
    """TensorFlow is 1.3 GB installed: only the TensorFlow build image carries it, never the
    serving image; a model's own image override is used for both, as documented."""
    if md.spec.runtime.image:
        return md.spec.runtime.image
    if md.spec.model.format in api.TENSORFLOW_FORMATS:
        return settings.tensorflow_build_image
    return settings.runtime_image


def pod_security(settings: OperatorSettings) -> dict[str, Any]:
    """The pod securityContext of every pod the operator creates: what the restricted Pod
    Security Standard asks, with the runtime image's user (fsGroup makes emptyDirs and Secret
    volumes its own)."""
    uid = settings.run_as_user
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


_SCALE: dict[str | None, Decimal] = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{f"{s}i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def _amount(quantity: int | str) -> Decimal | None:
    """A Kubernetes quantity as a number (None when it is not one: left to the apiserver)."""
    found = re.fullmatch(QUANTITY, str(quantity))
    if found is None:
        return None
    number, suffix = found[1], found[3]
    if suffix and suffix[0] in "eE" and suffix[1:]:
        return Decimal(number + suffix)  # an exponent, not the exa suffix "E"
    return Decimal(number) * _SCALE[suffix]


def _resources(
    requests: dict[str, int | str], limits: dict[str, int | str], override: api.Resources | None
) -> dict[str, Any]:
    """The operator's defaults with a ModelDeployment's own requests and limits laid over them,
    key by key. A default never contradicts what the spec says: a default request above the
    spec's limit becomes that limit, a default limit below the spec's request that request."""
    own_requests = dict(override.requests or {}) if override is not None else {}
    own_limits = dict(override.limits or {}) if override is not None else {}
    requests = {**requests, **own_requests}
    limits = {**limits, **own_limits}
    for key in requests.keys() & limits.keys():
        request, limit = _amount(requests[key]), _amount(limits[key])
        if request is None or limit is None or request <= limit:
            continue
        if key in own_limits and key not in own_requests:
            requests[key] = limits[key]
        elif key in own_requests and key not in own_limits:
            limits[key] = requests[key]
    return {"requests": requests, "limits": limits}


def build_resources(md: api.ModelDeployment, settings: OperatorSettings) -> dict[str, Any]:
    """Requests and limits of a build container."""
    return _resources(
        {"cpu": settings.build_cpu_request, "memory": settings.build_memory_request},
        {"memory": settings.build_memory_limit},
        md.spec.optimization.resources,
    )


def serving_resources(
    md: api.ModelDeployment, settings: OperatorSettings, *, fetch: bool = False
) -> dict[str, Any]:
    """Requests and limits of a serving pod's server: its spec's own over the defaults. The
    fetch (the operator's step, streaming the model whatever its size) keeps the defaults."""
    return _resources(
        {"cpu": settings.serving_cpu_request, "memory": settings.serving_memory_request},
        {"memory": settings.serving_memory_limit},
        None if fetch else md.spec.runtime.resources,
    )


def _store_access(settings: OperatorSettings, *, read_only: bool) -> tuple[_Mounts, list[str]]:
    """The volume, mount and arguments that give one container the artifact store: the node's
    directory of a file:// store, or the files of the store's Secret (never environment
    variables, which would meet the model's own AWS_* in a container that had both)."""
    access = _Mounts()
    access.add_store(settings.artifact_store, read_only=read_only)
    if settings.artifact_store_secret and not settings.artifact_store.startswith("file://"):
        access._add(
            {
                "name": "store-keys",
                "secret": {"secretName": settings.artifact_store_secret, "defaultMode": 0o440},
            },
            {"name": "store-keys", "mountPath": STORE_KEYS_DIR, "readOnly": True},
        )
        return access, ["--credentials-dir", STORE_KEYS_DIR]
    return access, []


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
    if model.format not in api.SELF_DESCRIBING_FORMATS:
        # Converting a pickled estimator executes it; the user opted in by naming the format.
        # (SavedModels and Keras files are loaded without running code: no opt-in.)
        args.append("--allow-unsafe-formats")
    args += ["--summary-file", "/dev/termination-log"]
    return args


def render_build_job(
    md: api.ModelDeployment, revision: str, settings: OperatorSettings
) -> dict[str, Any]:
    """Render the build Job of a revision: the build (the model's own code, with the model's
    credentials) as an init container, then the publish (the operator's image, with the
    store's) into the artifact store."""
    mounts = _Mounts()
    args = _build_args(md, revision, settings, mounts)
    # The root filesystem is read-only: the build writes its variants to /work, and converters
    # their temporary files to /tmp (HOME points there too: Keras and torch keep caches in it).
    scratch = {"sizeLimit": settings.build_scratch_limit}
    work = [{"name": "out", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}]
    mounts._add({"name": "out", "emptyDir": scratch}, work[0])
    mounts._add({"name": "tmp", "emptyDir": scratch}, work[1])
    store, store_args = _store_access(settings, read_only=False)
    env_from = []
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
        image=_build_image(md, settings),
        runtime_image=settings.runtime_image,
        image_pull_policy=settings.image_pull_policy,
        args=args,
        env_from=env_from,
        volume_mounts=mounts.mounts,
        publish_args=[
            "--source",
            OUTPUT_DIR,
            "--destination",
            naming.artifact_uri(settings.artifact_store, md.namespace, md.name, revision),
            "--progress",
            "json",
            *store_args,
        ],
        publish_mounts=work + store.mounts,
        volumes=mounts.volumes + store.volumes,
        pod_security=pod_security(settings),
        resources=build_resources(md, settings),
    )


def _request_limit_args(limits: api.RequestLimits) -> list[str]:
    """The serve flags of spec.runtime.requestLimits (the runtime's admission and deadline)."""
    return [
        "--max-in-flight",
        str(limits.max_in_flight),
        "--deadline-ms",
        str(durations.duration_ms(limits.deadline)),
        "--retry-after-s",
        str(limits.retry_after_seconds),
        "--max-body-bytes",
        str(limits.max_request_bytes),
    ]


def render_deployment(
    md: api.ModelDeployment,
    identity: naming.RevisionIdentity,
    settings: OperatorSettings,
    replicas: int,
    *,
    digest: str | None,
) -> dict[str, Any]:
    """Render the serving Deployment of a built revision. `digest`, the sha256 the build
    recorded for the model file, pins what the pods fetch (None: a revision made before
    pinning)."""
    revision = identity.revision
    runtime = md.spec.runtime
    model_dir = f"{MODELS_DIR}/{revision}"
    fetch, store_args = _store_access(settings, read_only=True)
    fetch._add(
        {"name": "model", "emptyDir": {"sizeLimit": settings.model_volume_limit}},
        {"name": "model", "mountPath": MODELS_DIR},
    )
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
        *_request_limit_args(runtime.request_limits),
        # Signed prediction tokens: a label sent to any pod counts for the revision that made
        # the prediction (docs/runtime.md, "Accuracy across pods").
        "--feedback-key-file",
        f"{FEEDBACK_KEY_DIR}/{FEEDBACK_KEY_FILE}",
    ]
    return _render(
        "deployment.yaml.j2",
        name=identity.name,
        namespace=identity.namespace,
        labels=identity.labels,
        annotations={naming.REVISION_ANNOTATION: revision},
        deployment_annotations={
            naming.REVISION_ANNOTATION: revision,
            **({naming.DIGEST_ANNOTATION: digest} if digest else {}),
        },
        owner=identity.owner,
        replicas=replicas,
        selector=identity.selector,
        pod_labels=identity.labels,
        drain_seconds=settings.drain_seconds,
        progress_deadline_seconds=md.spec.rollout.progress_deadline_seconds,
        # Covers the preStop drain, then the runtime's own wait for in-flight requests.
        grace_seconds=settings.drain_seconds + RUNTIME_DRAIN_TIMEOUT_SECONDS + 5,
        image=_image(md, settings),
        # The fetch holds the store's keys: always the operator's image, never an override.
        runtime_image=settings.runtime_image,
        image_pull_policy=settings.image_pull_policy,
        fetch_args=[
            "--source",
            naming.artifact_uri(settings.artifact_store, md.namespace, md.name, revision),
            "--output",
            model_dir,
            *(["--model-sha256", digest] if digest else []),
            *store_args,
        ],
        fetch_mounts=fetch.mounts,
        serve_args=serve_args,
        http_port=naming.HTTP_PORT,
        grpc_port=naming.GRPC_PORT,
        resources=serving_resources(md, settings),
        fetch_resources=serving_resources(md, settings, fetch=True),
        pod_security=pod_security(settings),
        volumes=[*fetch.volumes, {"name": "tmp", "emptyDir": {"sizeLimit": TMP_LIMIT}}],
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
