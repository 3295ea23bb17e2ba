"""Exceptions shared across the package's cores."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BulkheadFull", "ConfigError", "ConfigErrors", "ResilienceError", "every_error"]


class ResilienceError(Exception):
    """Base class of every exception this package raises on purpose."""


class ConfigError(ResilienceError, ValueError):
    """A setting or admin value that cannot be used; ``check_id``: the system check that
    reports it (``resilience.E0xx``), ``hint``: how to fix it."""

    def __init__(self, message: str, *, check_id: str, hint: str = "") -> None:
        super().__init__(message)
        self.check_id = check_id
        self.hint = hint


class ConfigErrors(ConfigError):
    """Every problem of one settings entry (a rule), so a check reports them all at once;
    it reads as its first problem to code that knows only ``ConfigError``."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(str(first), check_id=first.check_id, hint=first.hint)
        self.errors: tuple[ConfigError, ...] = tuple(
            e for error in errors for e in every_error(error)
        )


def every_error(exc: ConfigError) -> tuple[ConfigError, ...]:
    """The problems ``exc`` stands for: its ``errors`` if it has several, else itself."""
    return exc.errors if isinstance(exc, ConfigErrors) else (exc,)


class BulkheadFull(ResilienceError):
    """An outbound bulkhead had no slot within the wait allowed; the call was not made."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"bulkhead {name!r} is full")
        self.name = name
        self.retry_after = retry_after
