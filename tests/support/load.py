"""Steady, bounded inference load from the host to a model's Service, recording every answer."""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from dataclasses import dataclass, field

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
            lambda: self._one()[1] is None,
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
            revision, failure = self._one()
            answer = Answer(at, time.monotonic() - start, revision, failure)
            with self._lock:
                self.outcomes.answers.append(answer)
                if failure is None:
                    self.outcomes.by_revision[revision] += 1
                else:
                    self.outcomes.failures.append(failure)
            # Pacing, not waiting on a condition: a steady rate the node can sustain.
            self._stop.wait(self.pause_s)

    def _one(self) -> tuple[str, str | None]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(
                "POST",
                f"/v2/models/{self.model}/infer",
                body=self._body,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                return "", f"{time.strftime('%H:%M:%S')} HTTP {response.status}: {payload[:200]!r}"
            return str(json.loads(payload).get("model_version", "")), None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return "", f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}"
        finally:
            conn.close()
