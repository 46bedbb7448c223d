"""RFC 3339 timestamps as Kubernetes writes them (UTC, second precision), both ways."""

from __future__ import annotations

import datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime.datetime) -> str:
    """A moment as an RFC 3339 timestamp with second precision."""
    return moment.astimezone(datetime.UTC).strftime(FORMAT)


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 timestamp with second precision, as an aware UTC moment."""
    return datetime.datetime.strptime(text, FORMAT).replace(tzinfo=datetime.UTC)
