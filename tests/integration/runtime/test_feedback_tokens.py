"""Accuracy across pods: signed tokens let any pod count a label for the revision that predicted."""

from __future__ import annotations

import http.client
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.runtime import onnx_models
from tests.integration.runtime.server_process import ServerProcess, start_server

MODEL = "mlp"
ACCURACY = (
    "modelship_feedback_predictions_total",
    "modelship_feedback_correct_total",
)


@dataclass(frozen=True)
class Row:
    """One predicted row: who predicted it, what it said, and the token vouching for that."""

    pod: int
    revision: str
    predicted: int
    token: str


def scrape(server: ServerProcess) -> list[tuple[str, dict[str, str], float]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def post_feedback(server: ServerProcess, body: object) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("POST", f"/v2/models/{MODEL}/feedback", body=orjson.dumps(body))
    response = conn.getresponse()
    status, payload = response.status, orjson.loads(response.read())
    conn.close()
    assert status == 200, payload
    assert isinstance(payload, dict)
    return payload


def predict(server: ServerProcess, pod: int, revision: str, x: np.ndarray, grpc: bool) -> list[Row]:
    """Infer over REST or gRPC; returns one Row per input row with its token."""
    if grpc:
        gclient = grpcclient.InferenceServerClient(server.grpc_url)
        ginp = grpcclient.InferInput("x", list(x.shape), "FP32")
        ginp.set_data_from_numpy(x)
        gresult = gclient.infer(MODEL, [ginp])
        labels = gresult.as_numpy("label")
        tokens = gresult.get_response().parameters["modelship_tokens"].string_param.split(",")
        gclient.close()
    else:
        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=len(x) > 1)
        outputs = [httpclient.InferRequestedOutput("label", binary_data=len(x) > 1)]
        result = client.infer(MODEL, [inp], outputs=outputs)
        labels = result.as_numpy("label")
        tokens = result.get_response()["parameters"]["modelship_tokens"]
        client.close()
    assert labels is not None and len(tokens) == len(x) == len(labels)
    return [Row(pod, revision, int(v), t) for v, t in zip(labels, tokens, strict=True)]


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "key"
    path.write_bytes(os.urandom(32))
    return path


@pytest.fixture(scope="module")
def canary_dir(model_dir: Path) -> Path:
    """Revision 2: another model (other weights), built as the `int8-dynamic` variant."""
    directory = model_dir / "canary"
    directory.mkdir(exist_ok=True)
    onnx_models.mlp_model(directory / "model.onnx", seed=1)
    variant = {"name": "int8-dynamic", "file": "model.onnx"}
    manifest = {"selected": "int8-dynamic", "variants": [variant]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def _serve(model: Path, version: str, key_file: Path, logs: Path) -> ServerProcess:
    return start_server(
        model, MODEL, logs, "--version", version, "--feedback-key-file", str(key_file), wait=False
    )


@pytest.fixture(scope="module")
def pods(
    mlp_path: Path, canary_dir: Path, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[tuple[ServerProcess, str]]]:
    """Three pods of one ModelDeployment during a canary: two of revision 1, one of revision 2."""
    logs = tmp_path_factory.mktemp("logs")
    started = [
        (_serve(path, version, key_file, logs), version)
        for path, version in [(mlp_path, "1"), (mlp_path, "1"), (canary_dir, "2")]
    ]
    try:
        for server, _ in started:
            server.wait_ready()
        yield started
    finally:
        codes = [server.stop() for server, _ in started]
    assert codes == [0, 0, 0], [server.log() for server, _ in started]


def _sums(pods: list[tuple[ServerProcess, str]]) -> dict[tuple[str, str, str], float]:
    """sum by (revision, variant) over every pod, as PromQL would compute it."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for server, _ in pods:
        for name, labels, value in scrape(server):
            if name in ACCURACY and labels["model"] == MODEL:
                totals[(name, labels["revision"], labels["variant"])] += value
    return dict(totals)


def test_accuracy_per_revision_is_exact_whichever_pod_gets_the_label(
    pods: list[tuple[ServerProcess, str]],
) -> None:
    rng = np.random.default_rng(11)
    before = _sums(pods)
    rows: list[Row] = []
    for i in range(36):  # round robin; one or two rows; REST and gRPC
        pod = i % 3
        server, revision = pods[pod]
        x = rng.standard_normal((1 + i % 2, 16)).astype(np.float32)
        rows += predict(server, pod, revision, x, grpc=i % 4 == 3)

    # The truth: revision 1 is right on 3 rows of 4, revision 2 on 1 of 3.
    seen: Counter[str] = Counter()
    truth: Counter[tuple[str, bool]] = Counter()
    batches: dict[int, list[dict[str, object]]] = {0: [], 1: [], 2: []}
    for row in rows:
        k = seen[row.revision]
        seen[row.revision] += 1
        correct = k % 4 != 0 if row.revision == "1" else k % 3 == 0
        truth[(row.revision, correct)] += 1
        label = row.predicted if correct else row.predicted + 1
        target = (row.pod + 1 + k % 2) % 3  # never the pod that predicted
        assert target != row.pod
        batches[target].append({"token": row.token, "label": label})

    for target, items in batches.items():
        # Labels by id next to them: this pod never saw such an id, so they are unknown.
        answer = post_feedback(pods[target][0], [*items, {"id": "elsewhere", "label": 0}])
        assert answer == {"matched": len(items), "unknown": 1, "invalid": 0, "rejected": []}

    after = _sums(pods)

    def increase(name: str, revision: str, variant: str) -> float:
        key = (name, revision, variant)
        return after.get(key, 0.0) - before.get(key, 0.0)

    for revision, variant in [("1", "model"), ("2", "int8-dynamic")]:
        labelled = truth[(revision, True)] + truth[(revision, False)]
        assert increase("modelship_feedback_predictions_total", revision, variant) == labelled
        correct = increase("modelship_feedback_correct_total", revision, variant)
        assert correct == truth[(revision, True)]
        assert correct / labelled == truth[(revision, True)] / labelled
    assert truth[("1", True)] / seen["1"] == 3 / 4 and truth[("2", True)] / seen["2"] == 1 / 3
    # No other label sets: series exist only for what valid tokens named.
    assert {(r, v) for _, r, v in after} == {("1", "model"), ("2", "int8-dynamic")}
    # The revision-2 pod counted labels of revision 1 and the other way round.
    canary = {(n, lbl["revision"]): v for n, lbl, v in scrape(pods[2][0]) if n in ACCURACY}
    assert canary[("modelship_feedback_predictions_total", "1")] > 0


def test_replays_forgeries_and_other_models_are_invalid_not_errors(
    pods: list[tuple[ServerProcess, str]],
) -> None:
    server = pods[0][0]
    row, other = predict(server, 0, "1", np.zeros((2, 16), np.float32), grpc=False)
    assert post_feedback(pods[1][0], {"token": row.token, "label": row.predicted})["matched"] == 1
    forged = row.token[:-2] + ("AA" if not row.token.endswith("AA") else "BA")
    answer = post_feedback(
        pods[1][0],
        [
            {"token": row.token, "label": row.predicted},  # replayed to the same pod
            {"token": forged, "label": row.predicted},
            {"token": "garbage!", "label": 1},
            {"token": other.token, "label": {"not": "a label"}},
        ],
    )
    assert answer["matched"] == 0 and answer["invalid"] == 4
    reasons = [r["reason"] for r in answer["rejected"]]  # type: ignore[attr-defined]
    assert reasons[0] == "replayed" and reasons[2:] == ["malformed", "label"]
    assert reasons[1] in {"signature", "malformed"}
    invalid = {
        n: v
        for n, lbl, v in scrape(pods[1][0])
        if n == "modelship_feedback_invalid_total" and lbl["revision"] == "1"
    }
    assert invalid["modelship_feedback_invalid_total"] >= 4


def test_a_restarted_pod_counts_labels_for_tokens_issued_before(
    mlp_path: Path, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("logs")
    server = _serve(mlp_path, "1", key_file, logs)
    server.wait_ready()
    try:
        rows = predict(server, 0, "1", np.eye(3, 16, dtype=np.float32), grpc=False)
    finally:
        assert server.stop() == 0, server.log()
    restarted = _serve(mlp_path, "1", key_file, logs)
    try:
        restarted.wait_ready()
        labels = [{"token": r.token, "label": r.predicted} for r in rows]
        labels[0]["label"] = rows[0].predicted + 1
        assert post_feedback(restarted, labels)["matched"] == 3
        samples = {
            n: v
            for n, lbl, v in scrape(restarted)
            if n in ACCURACY and (lbl["revision"], lbl["variant"]) == ("1", "model")
        }
        assert samples == {ACCURACY[0]: 3, ACCURACY[1]: 2}
    finally:
        assert restarted.stop() == 0, restarted.log()
