"""Real models trained here, built from file:// and s3://; the selected variant matches them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests.integration.build import models
from tests.integration.build.conftest import upload
from tests.integration.build.s3server import S3Server

# Stated tolerances of the selected variant against the original model on the validation rows.
# Trees compare float32 features with float64-trained thresholds, so a rare row may flip.
TOLERANCE = {
    "logistic": {"agreement": 0.99, "max_abs_diff": 1e-4},
    "forest-pipeline": {"agreement": 0.98, "max_abs_diff": 0.1},
    "xgboost": {"agreement": 0.99, "max_abs_diff": 1e-3},
    "lightgbm-regressor": {"agreement": None, "max_abs_diff": 1e-3},
}


def _run_selected(output: Path, manifest: dict[str, Any], x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(
        str(output / manifest["selectedFile"]), providers=["CPUExecutionProvider"]
    )
    name = manifest["signature"]["inputs"][0]["name"]
    values = session.run(None, {name: x})
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), values, strict=True)}


def check_matches_original(result: Any, model: models.TrainedModel) -> None:
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    assert result.summary["ok"] is True
    assert result.summary["selected"] == manifest["selected"]
    data = np.load(model.validation)
    x = data["x"]
    outputs = _run_selected(result.output, manifest, x)
    labels, scores = model.predict(x)
    tolerance = TOLERANCE[model.name]
    got_scores = next(v for k, v in outputs.items() if v.dtype.kind == "f")
    scale = float(np.std(scores)) if labels is None else 1.0
    assert (
        np.max(np.abs(got_scores.reshape(scores.shape) - scores))
        <= tolerance["max_abs_diff"] * scale
    )
    if labels is not None:
        got_labels = next(v for k, v in outputs.items() if v.dtype.kind in "iu")
        assert np.mean(got_labels == labels) >= tolerance["agreement"]
    selected = next(v for v in manifest["variants"] if v["selected"])
    assert selected["passed"] and selected["metrics"]["p50Ms"] > 0
    assert manifest["source"]["sha256"] == result.summary["sourceSha256"]


MODEL_FIXTURES = ["logistic", "forest", "xgb", "lgbm"]


@pytest.mark.parametrize("fixture", MODEL_FIXTURES)
def test_build_from_file_uri(fixture: str, request: pytest.FixtureRequest, build: Any) -> None:
    model: models.TrainedModel = request.getfixturevalue(fixture)
    result = build(
        "--source",
        model.path.as_uri(),
        "--format",
        model.format,
        "--validation-data",
        str(model.validation),
        *(["--allow-unsafe-formats"] if model.unsafe else []),
    )
    check_matches_original(result, model)
    assert result.manifest()["task"] == (
        "regressor" if model.name.endswith("regressor") else "classifier"
    )


@pytest.mark.parametrize("fixture", MODEL_FIXTURES)
def test_build_from_s3(
    fixture: str, request: pytest.FixtureRequest, build: Any, s3: S3Server
) -> None:
    model: models.TrainedModel = request.getfixturevalue(fixture)
    source = upload(s3, model.path, f"sources/{model.path.name}")
    validation = upload(s3, model.validation, f"sources/{model.validation.name}")
    result = build(
        "--source",
        source,
        "--format",
        model.format,
        "--validation-data",
        validation,
        "--sha256",
        models_sha256(model.path),
        *(["--allow-unsafe-formats"] if model.unsafe else []),
    )
    check_matches_original(result, model)
    assert result.manifest()["source"]["uri"] == source


def models_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mlp_quantized_variants_are_validated_and_the_fastest_passing_one_selected(
    tmp_path: Path, build: Any
) -> None:
    path, validation, forward = models.clustered_mlp(tmp_path, (64, 256, 256, 10))
    result = build(
        "--source",
        str(path),
        "--format",
        "onnx",
        "--validation-data",
        str(validation),
        "--calibration-data",
        str(validation),
        "--quantization",
        "auto",
        "--max-accuracy-drop",
        "0.02",
    )
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    by_name = {v["name"]: v for v in manifest["variants"]}
    assert set(by_name) == {"fp32", "int8", "int8-static", "fp16"}
    passed = [v for v in manifest["variants"] if v["passed"]]
    fastest = min(passed, key=lambda v: v["metrics"]["p50Ms"])
    assert manifest["selected"] == fastest["name"]
    for variant in manifest["variants"]:
        if variant["passed"]:
            assert variant["metrics"]["accuracyDrop"] <= 0.02
            assert (result.output / variant["file"]).is_file()
    x = np.load(validation)["x"]
    logits = _run_selected(result.output, manifest, x)["logits"]
    assert np.mean(np.argmax(logits, axis=1) == np.argmax(forward(x), axis=1)) >= 0.98


def test_without_validation_data_agreement_on_generated_inputs(tmp_path: Path, build: Any) -> None:
    path, _, _ = models.clustered_mlp(tmp_path, (16, 32, 32, 4), name="tiny")
    result = build("--source", str(path), "--format", "onnx", "--quantization", "dynamic-int8")
    assert result.code == 0, result.stderr
    manifest = result.manifest()
    assert manifest["validation"]["dataset"] is None
    fp32 = next(v for v in manifest["variants"] if v["name"] == "fp32")
    assert fp32["metrics"]["agreement"] == 1.0
    assert fp32["metrics"]["accuracy"] is None  # no labels: agreement only


TORCH_MISSING = models.torch_available()


@pytest.mark.skipif(
    TORCH_MISSING is not None,
    reason=(
        "PyTorch CPU build not importable here. PyPI's only linux x86_64 torch wheel needs "
        "the nvidia-*/cuda-toolkit wheels (forbidden on this machine): "
        "`pip download --no-deps torch` (2.15.0) then `import torch` fails with "
        "ValueError: libcublasLt.so.*[0-9] not found in the system path; the CPU index "
        "download.pytorch.org/whl/cpu does not resolve (curl: (6)). "
        f"Import error here: {TORCH_MISSING}"
    ),
)
def test_build_pytorch_mlp_from_exported_program(tmp_path: Path, build: Any, s3: S3Server) -> None:
    import torch  # noqa: PLC0415 - importable only where a CPU PyTorch is installed

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    x = torch.randn(400, 16)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    net.eval()
    program = torch.export.export(net, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "mlp.pt2"
    torch.export.save(program, str(path))
    np.savez(tmp_path / "val.npz", x=x.numpy()[300:], y=y.numpy()[300:])
    signature = '{"inputs":[{"name":"x","datatype":"FP32","shape":[-1,16]}]}'
    for source in (path.as_uri(), upload(s3, path, "sources/mlp.pt2")):
        result = build(
            "--source", source, "--format", "pytorch", "--signature", signature,
            "--validation-data", str(tmp_path / "val.npz"),
            output=tmp_path / f"out-{source.split(':')[0]}",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        manifest = result.manifest()
        got = _run_selected(result.output, manifest, x.numpy()[300:])
        logits = next(iter(got.values()))
        with torch.no_grad():
            want = net(x[300:]).numpy()
        assert np.mean(np.argmax(logits, 1) == np.argmax(want, 1)) >= 0.98


def test_gs_scheme_and_mounted_credentials(
    tmp_path: Path,
    build: Any,
    s3: S3Server,
    xgb: models.TrainedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gs:// speaks the S3 XML API with HMAC keys: MinIO stands in for GCS's endpoint here."""
    source = upload(s3, xgb.path, "sources/gs-xgb.json")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "GCS_ACCESS_KEY_ID").write_text(s3.access_key + "\n")
    (secret / "GCS_SECRET_ACCESS_KEY").write_text(s3.secret_key)
    (secret / "GCS_ENDPOINT_URL").write_text(s3.endpoint)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    # --credentials-dir sets this variable for the process; registering it undoes that afterwards.
    monkeypatch.setenv("MODELSHIP_CREDENTIALS_DIR", "")
    result = build(
        "--source", source.replace("s3://", "gs://"), "--format", "xgboost",
        "--validation-data", str(xgb.validation), "--credentials-dir", str(secret),
    )  # fmt: skip
    check_matches_original(result, xgb)
