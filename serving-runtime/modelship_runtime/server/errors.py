"""Errors of the data plane, each carrying the HTTP status it maps to."""

from __future__ import annotations


class InferenceError(Exception):
    """A request could not be served; `status` is the HTTP status the front ends report."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(InferenceError):
    """The client sent something malformed: JSON, shapes, datatypes, binary lengths."""

    status = 400


class ModelNotFound(InferenceError):
    """The request names a model or version this server does not serve."""

    status = 404


class PayloadTooLarge(InferenceError):
    """The request body exceeds the configured limit."""

    status = 413


class NotReady(InferenceError):
    """The model is warming up or the server is draining."""

    status = 503


class Overloaded(InferenceError):
    """Refused without running: too many requests admitted already, or the request's deadline
    passed before the model was free. The client may retry after `retry_after_s`."""

    status = 503

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason  # "queue_full" | "deadline": the shed counter's label
