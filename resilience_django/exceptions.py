"""Exceptions shared across the package's cores."""

from __future__ import annotations

__all__ = ["BulkheadFull", "ConfigError", "ResilienceError"]


class ResilienceError(Exception):
    """Base class of every exception this package raises on purpose."""


class ConfigError(ResilienceError, ValueError):
    """A setting or admin value that cannot be used.

    ``check_id`` is the Django system check id that reports it (``resilience.E0xx``)
    and ``hint`` tells the user how to fix it; the admin forms show the message.
    """

    def __init__(self, message: str, *, check_id: str, hint: str = "") -> None:
        super().__init__(message)
        self.check_id = check_id
        self.hint = hint


class BulkheadFull(ResilienceError):
    """An outbound bulkhead had no slot within the wait allowed; the call was not made."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"bulkhead {name!r} is full")
        self.name = name
        self.retry_after = retry_after
