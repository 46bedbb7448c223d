"""A JSON POST as plain HTTP clients send it (urllib, no project code), for tests that check a
server's answers."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def post(url: str, body: Any, timeout: float = 10) -> Any:
    """POST `body` as JSON and return the decoded answer; an HTTP error raises HTTPError."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
