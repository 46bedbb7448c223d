"""A real tritonserver from the nvidia-pytriton wheel, in its own venv under $MODELSHIP_CACHE.

The wheel ships tritonserver with only the python backend. Its python-backend stub links the
system libpython3.11, so the venv is built on /usr/bin/python3.11 (a pyenv interpreter's newer
standard library breaks the stub: '_thread.RLock' object has no attribute '_recursion_count'),
and models point EXECUTION_ENV_PATH at that venv so the stub finds numpy and onnxruntime.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTRITON_VERSION = "0.7.0"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def cache_root() -> Path:
    return Path(os.environ.get("MODELSHIP_CACHE", Path.home() / ".cache" / "modelship"))


def pytriton_venv() -> Path:
    """Create (once, cached by version) the venv holding nvidia-pytriton and onnxruntime."""
    venv = cache_root() / "venvs" / f"pytriton-{PYTRITON_VERSION}"
    marker = venv / ".complete"
    if marker.exists():
        return venv
    if not SYSTEM_PYTHON.exists():
        raise RuntimeError(f"{SYSTEM_PYTHON} is missing: the tritonserver python stub needs it")
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), "venv", "--allow-existing", "--python", str(SYSTEM_PYTHON), str(venv)], check=True
    )
    subprocess.run(
        [str(uv), "pip", "install", "--python", str(venv / "bin" / "python"),
         f"nvidia-pytriton=={PYTRITON_VERSION}", "onnxruntime", "numpy"],
        check=True,
    )  # fmt: skip
    marker.write_text("ok\n")
    return venv


def site_packages(venv: Path) -> Path:
    return venv / "lib" / "python3.11" / "site-packages"


def backend_directory(venv: Path) -> Path:
    """The python backend with the stub for Python 3.11 next to it, as tritonserver expects."""
    server = site_packages(venv) / "pytriton" / "tritonserver"
    target = cache_root() / f"triton-{PYTRITON_VERSION}-backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for item in (server / "backends" / "python").iterdir():
        shutil.copy2(item, target / item.name)
    shutil.copy2(
        server / "python_backend_stubs" / "3.11" / "triton_python_backend_stub",
        target / "triton_python_backend_stub",
    )
    return target.parent


def start_tritonserver(
    venv: Path, repository: Path, *, http_port: int, grpc_port: int, metrics_port: int, log: Path
) -> subprocess.Popen[bytes]:
    binary = site_packages(venv) / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(site_packages(venv) / "nvidia_pytriton.libs"),
        "PYTHONHOME": "/usr",
    }
    env.pop("PYTHONPATH", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                str(binary),
                f"--model-repository={repository}",
                f"--backend-directory={backend_directory(venv)}",
                f"--http-port={http_port}",
                f"--grpc-port={grpc_port}",
                f"--metrics-port={metrics_port}",
                "--exit-on-error=false",
                "--strict-readiness=false",
                "--allow-gpu-metrics=false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


PYTHON_MODEL = '''\
"""Serves model.onnx with ONNX Runtime inside Triton's python backend."""
import json
import os


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options)
        self.outputs = [o["name"] for o in json.loads(args["model_config"])["output"]]

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            results = self.session.run(self.outputs, {"x": x})
            tensors = [pb_utils.Tensor(n, r) for n, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
'''


def python_backend_config(name: str, venv: Path, width: int, classes: int) -> str:
    return f"""\
name: "{name}"
backend: "python"
max_batch_size: 16
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {{ name: "scores" data_type: TYPE_FP32 dims: [ {classes} ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "{venv}" }} }}
"""
