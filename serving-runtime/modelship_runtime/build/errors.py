"""Errors of the build toolchain: each one carries a one-line message naming its cause."""

from __future__ import annotations


class BuildError(Exception):
    """A build failed for a reason the user can act on; `str()` is the one-line cause."""

    stage = "build"

    def __init__(self, message: str) -> None:
        # The CLI prints exactly this line and the operator shows it in status: keep it one line.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class FetchError(BuildError):
    stage = "fetch"


class UnsafeFormatError(BuildError):
    stage = "convert"


class ConversionError(BuildError):
    stage = "convert"


class DatasetError(BuildError):
    stage = "dataset"


class OptimizationError(BuildError):
    stage = "optimize"


class ValidationFailure(BuildError):
    stage = "validate"


class PublishError(BuildError):
    stage = "publish"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries' errors run to pages), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
