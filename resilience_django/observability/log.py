"""Structured log records: a safe ``extra=`` builder and a JSON formatter (docs/metrics.md,
"Logs": the fields, a ``LOGGING`` example, and why nothing per request goes above DEBUG)."""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["JsonFormatter", "fields", "fields_of", "json_or_repr"]

# Attributes every LogRecord has: extra= may not overwrite them (logging raises
# KeyError), and they are not "fields" when reading a record back.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def fields(**values: Any) -> dict[str, Any]:
    """An ``extra=`` dict; names that clash with LogRecord attributes get a ``resilience_`` prefix.

    >>> fields(breaker="pricing", name="x")
    {'breaker': 'pricing', 'resilience_name': 'x'}
    """
    return {(f"resilience_{k}" if k in _RESERVED else k): v for k, v in values.items()}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was logged with (what ``extra=`` added)."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        try:
            return json.dumps(payload, default=str, allow_nan=False)
        except (TypeError, ValueError):  # NaN, a tuple key, a cycle: that value as its repr
            return json.dumps({k: json_or_repr(v) for k, v in payload.items()}, default=str)


def json_or_repr(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``repr()``."""
    try:
        json.dumps(value, default=str, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value
