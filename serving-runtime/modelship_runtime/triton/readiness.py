"""Readiness of a Triton (or any Open Inference Protocol) server, asked through tritonclient."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

Protocol = Literal["http", "grpc"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """What the server said; `reason` names the first thing that is not ready."""

    live: bool
    server_ready: bool
    model_ready: bool
    reason: str

    @property
    def ready(self) -> bool:
        return self.live and self.server_ready and self.model_ready


def check_readiness(
    url: str, model: str, version: str = "", protocol: Protocol = "http", timeout_s: float = 5.0
) -> Readiness:
    """One round of live, server-ready and model-ready calls; connection errors are not-ready."""
    from tritonclient.utils import InferenceServerException  # noqa: PLC0415

    try:
        if protocol == "http":
            import tritonclient.http as httpclient  # noqa: PLC0415

            client = httpclient.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
            live = client.is_server_live()
            server_ready = client.is_server_ready()
            model_ready = client.is_model_ready(model, version)
            client.close()
        else:
            import tritonclient.grpc as grpcclient  # noqa: PLC0415

            gclient = grpcclient.InferenceServerClient(url)
            live = gclient.is_server_live(client_timeout=timeout_s)
            server_ready = gclient.is_server_ready(client_timeout=timeout_s)
            model_ready = gclient.is_model_ready(model, version, client_timeout=timeout_s)
            gclient.close()
    except (InferenceServerException, OSError, ConnectionError) as exc:
        return Readiness(False, False, False, f"{url} unreachable over {protocol}: {exc}")
    if not live:
        reason = f"server at {url} is not live"
    elif not server_ready:
        reason = f"server at {url} is not ready"
    elif not model_ready:
        reason = f"model {model!r} (version {version or 'latest'}) is not ready at {url}"
    else:
        reason = "ready"
    return Readiness(bool(live), bool(server_ready), bool(model_ready), reason)


def wait_for_readiness(
    url: str,
    model: str,
    *,
    deadline_s: float,
    version: str = "",
    protocol: Protocol = "http",
    interval_s: float = 0.5,
) -> Readiness:
    """Poll until ready or the deadline passes; returns the last answer either way."""
    end = time.monotonic() + deadline_s
    while True:
        answer = check_readiness(url, model, version, protocol, timeout_s=min(5.0, deadline_s))
        if answer.ready or time.monotonic() >= end:
            return answer
        time.sleep(interval_s)
