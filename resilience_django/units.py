"""Rate and duration strings: ``"100/m"``, ``"100/30s"``, ``"800ms"``, ``"5m"``.

Parsing lives here, apart from the settings, because the admin forms, the
view decorators and the settings all accept the same strings and must agree
on what they mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Rate", "parse_duration", "parse_rate"]

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
# A period in a rate may be a bare unit ("m") or a count and a unit ("30s").
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_RATE_WORDS = {"sec": "s", "second": "s", "min": "m", "minute": "m", "hour": "h", "day": "d"}


def parse_duration(value: str | int | float) -> float:
    """Return a duration in seconds.

    Numbers are taken as seconds; strings need a unit.

    >>> parse_duration("800ms"), parse_duration("30s"), parse_duration("5m")
    (0.8, 30.0, 300.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration; write a number and a unit, like '800ms', "
                "'30s', '5m', '1h'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{value!r} is not a duration: it must be a finite number >= 0")
    return seconds


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period`` seconds."""

    limit: int
    period: float

    @property
    def per_second(self) -> float:
        return self.limit / self.period

    def __str__(self) -> str:
        period = self.period
        if period == int(period):
            return f"{self.limit}/{int(period)}s"
        return f"{self.limit}/{int(period * 1000)}ms"


def parse_rate(value: str | Rate) -> Rate:
    """Parse ``"100/m"``, ``"10/s"``, ``"5000/h"``, ``"100/30s"``.

    >>> parse_rate("100/30s")
    Rate(limit=100, period=30.0)
    """
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate; write it like '100/m' or '100/30s'")
    text = value.strip().lower()
    for word, unit in _RATE_WORDS.items():
        if text.endswith("/" + word):
            text = text[: -len(word)] + unit
            break
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"{value!r} is not a rate; write a count, a slash and a period, like '100/m', "
            "'10/s', '5000/h' or '100/30s'"
        )
    limit = int(match.group(1))
    count = float(match.group(2)) if match.group(2) else 1.0
    period = count * _UNIT_SECONDS[match.group(3)]
    if limit <= 0:
        raise ValueError(f"{value!r}: the count must be at least 1")
    if period <= 0:
        raise ValueError(f"{value!r}: the period must be longer than zero")
    return Rate(limit=limit, period=period)
