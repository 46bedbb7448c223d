"""Steady, bounded inference load from the host to a model's Service, recording every answer."""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent (wall clock, s), how long it took, who answered, or why
    it failed."""

    at: float
    seconds: float
    revision: str
    failure: str | None


@dataclass
class Outcomes:
    """What the load saw: answers per revision that made them, every failure, and every request
    in order (for timelines: when the first bad answer came, when the last)."""

    by_revision: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_revision.values()) + len(self.failures)


class SteadyLoad:
    """One request at a time, a fresh connection each (as a client behind a load balancer opens
    them), until stopped or until its own bounds (count and time) end it.

    Only ever aimed at a ClusterIP of the local cluster (this machine's kube-proxy)."""

    def __init__(
        self,
        host: str,
        model: str,
        *,
        port: int = 8080,
        pause_s: float = 0.02,
        max_seconds: float = 600,
        max_requests: int = 30_000,
    ) -> None:
        self.host, self.port, self.model = host, port, model
        self.pause_s, self.max_seconds, self.max_requests = pause_s, max_seconds, max_requests
        self.outcomes = Outcomes()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{model}", daemon=True)
        body = {
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
        }
        self._body = json.dumps(body).encode()

    def start(self, ready_within: float = 30) -> SteadyLoad:
        """Start once the Service answers at all: a Service whose pods just became ready is
        programmed on the node's proxy a moment later, and requests before that are refused
        whatever the operator does. What the load measures starts from a Service that works."""
        wait_until(
            lambda: self._call()[1] is None,
            timeout=ready_within,
            what=f"{self.host}:{self.port} answering model {self.model}",
        )
        self._thread.start()
        return self

    def stop(self) -> Outcomes:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.snapshot()

    def snapshot(self) -> Outcomes:
        with self._lock:
            return Outcomes(
                collections.Counter(self.outcomes.by_revision),
                list(self.outcomes.failures),
                list(self.outcomes.answers),
            )

    def answered_by(self, revision: str) -> int:
        with self._lock:
            return self.outcomes.by_revision[revision]

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        sent = 0
        while not self._stop.is_set() and time.monotonic() < deadline and sent < self.max_requests:
            sent += 1
            at, start = time.time(), time.monotonic()
            revision, failure, payload = self._call()
            answer = Answer(at, time.monotonic() - start, revision, failure)
            if payload is not None:
                self._answered(sent, revision, payload)
            with self._lock:
                self.outcomes.answers.append(answer)
                if failure is None:
                    self.outcomes.by_revision[revision] += 1
                else:
                    self.outcomes.failures.append(failure)
            # Pacing, not waiting on a condition: a steady rate the node can sustain.
            self._stop.wait(self.pause_s)

    def _answered(self, index: int, revision: str, payload: dict[str, Any]) -> None:
        """Called in the load's thread with each successful answer (request `index`, from 1)."""

    def _call(self) -> tuple[str, str | None, dict[str, Any] | None]:
        status, payload, failure = post_json(
            self.host, self.port, f"/v2/models/{self.model}/infer", self._body
        )
        if failure is not None:
            return "", failure, None
        if status != 200 or not isinstance(payload, dict):
            return "", f"{time.strftime('%H:%M:%S')} HTTP {status}: {str(payload)[:200]!r}", None
        return str(payload.get("model_version", "")), None, payload


def post_json(host: str, port: int, path: str, body: bytes) -> tuple[int, Any, str | None]:
    """POST a JSON body on a fresh connection: (status, the parsed answer or its text, or why
    there is no answer)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "Connection": "close"},
        )
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw), None
        except ValueError:
            return response.status, raw[:200].decode(errors="replace"), None
    except (OSError, http.client.HTTPException) as exc:
        return 0, None, f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}"
    finally:
        conn.close()


@dataclass
class LabelTally:
    """Labels a LabellingLoad sent back and the runtime counted, by the revision that predicted."""

    labelled: collections.Counter[str] = field(default_factory=collections.Counter)
    correct: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: list[str] = field(default_factory=list)


class LabellingLoad(SteadyLoad):
    """A SteadyLoad that sends a label back for every `label_every`-th answer, with the answer's
    prediction token, to the model's Service on a fresh connection (so the label mostly reaches
    another pod than the one that predicted, of either revision).

    `truth(index, predicted)` gives the label of request `index` (from 1) whose predicted class
    (the argmax of the first output) was `predicted`: what the client later learns."""

    def __init__(
        self,
        host: str,
        model: str,
        truth: Callable[[int, int], int],
        *,
        label_every: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, model, **kwargs)
        self.truth, self.label_every = truth, label_every
        self.labels = LabelTally()

    def tally(self) -> LabelTally:
        with self._lock:
            return LabelTally(
                collections.Counter(self.labels.labelled),
                collections.Counter(self.labels.correct),
                list(self.labels.refused),
            )

    def _answered(self, index: int, revision: str, payload: dict[str, Any]) -> None:
        if index % self.label_every:
            return
        scores = payload["outputs"][0]["data"]
        predicted = max(range(len(scores)), key=scores.__getitem__)
        token = payload["parameters"]["modelship_tokens"][0]
        label = self.truth(index, predicted)
        body = json.dumps({"token": token, "label": label}).encode()
        status, answer, failure = post_json(
            self.host, self.port, f"/v2/models/{self.model}/feedback", body
        )
        with self._lock:
            if failure is None and status == 200 and answer.get("matched") == 1:
                self.labels.labelled[revision] += 1
                self.labels.correct[revision] += label == predicted
            else:
                self.labels.refused.append(f"{status} {failure or answer}")
