"""The local cluster's object store (MinIO on the node's address, started by hack/store.sh):
its keys from `.cluster/endpoints.env`, the Secrets that hand them to pods, and the test models
uploaded to it. Pods reach it at the same address as this process does."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from kubernetes import client

from tests.support.onnx_models import write_linear_onnx
from tests.support.prometheus import ENDPOINTS_FILE, read_endpoints

# The operator's setting MODELSHIP_ARTIFACT_STORE_SECRET in the tests, and the
# spec.model.credentialsSecret of every model they upload: one Secret each, the same keys.
STORE_SECRET = "modelship-artifact-store"
MODEL_SECRET = "model-store"
# hack/store.sh's STORE_BUCKET.
BUCKET = "modelship"
# What a namespace on a shared cluster enforces: every model that really runs runs under it.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@dataclass(frozen=True)
class ObjectStore:
    url: str
    bucket: str
    access_key: str
    secret_key: str

    @classmethod
    def from_endpoints(cls) -> ObjectStore:
        try:
            endpoints = read_endpoints(ENDPOINTS_FILE)
        except FileNotFoundError:
            raise RuntimeError(
                f"{ENDPOINTS_FILE} is missing: the local cluster is not up"
            ) from None
        keys = ("STORE_URL", "STORE_BUCKET", "STORE_ACCESS_KEY", "STORE_SECRET_KEY")
        missing = [k for k in keys if not endpoints.get(k)]
        if missing:
            raise RuntimeError(
                f"{', '.join(missing)} missing in {ENDPOINTS_FILE}: cluster-up did not start the "
                "object store (its output says why; 'make binaries' then 'hack/cluster.sh up')"
            )
        return cls(*(endpoints[k] for k in keys))

    @property
    def artifact_store(self) -> str:
        """Where the tests' operators publish builds."""
        return f"s3://{self.bucket}/builds"

    def keys(self) -> dict[str, str]:
        """The variables the runtime reads (as env or as the files of a mounted Secret)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def share(self, core: client.CoreV1Api, namespace: str) -> None:
        """Make a namespace what a shared cluster's is: `restricted` Pod Security enforced, and
        the Secrets with the keys of the store and of the models."""
        core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
        self.give_keys(core, namespace)

    def give_keys(self, core: client.CoreV1Api, namespace: str) -> None:
        """The store's Secret and the models' Secret in a namespace (made once)."""
        for name in (STORE_SECRET, MODEL_SECRET):
            body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=self.keys())
            try:
                core.create_namespaced_secret(namespace, body)
            except client.exceptions.ApiException as exc:
                if exc.status != 409:
                    raise

    def upload(self, key: str, data: bytes) -> str:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def read(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def upload_linear(
        self,
        namespace: str,
        name: str,
        weights: np.ndarray[Any, Any],
        writer: Callable[[Path, np.ndarray[Any, Any]], None] = write_linear_onnx,
    ) -> str:
        """y = x @ weights as an ONNX model (made by `writer`) in the store, under the
        namespace's prefix."""
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.onnx"
            writer(path, weights)
            return self.upload(f"models/{namespace}/{name}.onnx", path.read_bytes())
