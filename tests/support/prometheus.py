"""The local cluster's Prometheus: where `.cluster/endpoints.env` says it is, queried over its HTTP
API with a timeout on every request. Plain urllib: the PyPI clients pull in pandas and more."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.support.cluster import REPO

ENDPOINTS_FILE = REPO / ".cluster" / "endpoints.env"


class PrometheusError(RuntimeError):
    """Prometheus answered, but not with a successful API response."""


def read_endpoints(path: Path = ENDPOINTS_FILE) -> dict[str, str]:
    """KEY=VALUE lines of the endpoints file; blank lines and `#` comments are skipped."""
    endpoints: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        endpoints[key.strip()] = value.strip().strip("'\"")
    return endpoints


def prometheus_url(path: Path = ENDPOINTS_FILE) -> str:
    """PROMETHEUS_URL from the endpoints file, or an error saying why it is not there."""
    try:
        endpoints = read_endpoints(path)
    except FileNotFoundError:
        raise RuntimeError(f"{path} is missing: the local cluster is not up") from None
    url = endpoints.get("PROMETHEUS_URL")
    if not url:
        raise RuntimeError(
            f"no PROMETHEUS_URL in {path}: cluster-up did not start the metrics plane"
            " (its output says why; 'make binaries images' then 'hack/cluster.sh up')"
        )
    return url


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus server's HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/)."""

    url: str
    timeout: float = 10.0

    @classmethod
    def from_endpoints(cls, path: Path = ENDPOINTS_FILE, timeout: float = 10.0) -> Prometheus:
        return cls(prometheus_url(path), timeout)

    def _open(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url.rstrip('/')}{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return cast(bytes, response.read())
        except urllib.error.HTTPError as exc:
            # The API's error body says what was wrong with the query.
            body = exc.read().decode(errors="replace")[:500]
            raise PrometheusError(f"GET {url}: HTTP {exc.code}: {body}") from exc

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        payload = json.loads(self._open(path, params))
        if payload.get("status") != "success":
            raise PrometheusError(f"GET {path}: {payload.get('errorType')}: {payload.get('error')}")
        return payload["data"]

    def ready(self) -> bool:
        """True when /-/ready answers 200 (the TSDB is open and the server serves queries)."""
        try:
            self._open("/-/ready")
        except (OSError, PrometheusError):
            return False
        return True

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the result's samples, each `{"metric": {...}, "value": [t, "v"]}`."""
        data = self._api("/api/v1/query", {"query": promql})
        if data["resultType"] not in ("vector", "matrix"):
            raise PrometheusError(f"{promql!r} gave a {data['resultType']}, not a vector")
        return cast(list[dict[str, Any]], data["result"])

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """Scrape targets (`active` or `dropped`), each with `labels`, `health`, `lastError`."""
        data = self._api("/api/v1/targets", {"state": state})
        return cast(list[dict[str, Any]], data.get(f"{state}Targets") or [])

    def rule_groups(self, rule_type: str | None = None) -> list[dict[str, Any]]:
        """Loaded rule groups (`alert` or `record` rules only, when given), each with `rules`."""
        data = self._api("/api/v1/rules", {"type": rule_type} if rule_type else None)
        return cast(list[dict[str, Any]], data["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), each with `labels`, `state`, `activeAt`."""
        return cast(list[dict[str, Any]], self._api("/api/v1/alerts")["alerts"])
