"""Rate and duration strings (``"100/m"``, ``"800ms"``), and the ranges of every numeric setting.

One place, so the settings, the admin forms and the view decorators agree on what a string
means and refuse an out-of-range value with the same words (docs/settings.md lists the ranges)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_BURST", "MAX_CONCURRENT", "MAX_COUNT", "MAX_DEADLINE", "MAX_DURATION", "MAX_LOCAL_KEYS",
    "MAX_QUEUE", "MAX_RATE_COUNT", "MAX_RATE_PERIOD", "MIN_RATE_PERIOD", "Rate", "bounded_int",
    "parse_deadline_budget", "parse_duration", "parse_rate", "safe_repr",
]  # fmt: skip

# The ranges: far above any sane setting, far below what would overflow a C integer, a float,
# Redis' millisecond expiries or PostgreSQL's statement_timeout; past one is a typo (an error).
DAY = 86400.0
MAX_DURATION = 365 * DAY  # any duration setting (timeouts, intervals, windows, waits)
MAX_DEADLINE = DAY  # a request's budget (DEADLINE, admin route budgets, @deadline)
MAX_RATE_COUNT = 1_000_000_000  # a rate's count ("100/m": 100)
MAX_BURST = MAX_RATE_COUNT
MIN_RATE_PERIOD = 0.001  # a rate's period: from one millisecond up to a year
MAX_RATE_PERIOD = MAX_DURATION
MAX_LOCAL_KEYS = 10_000_000  # LOCAL_MAX_KEYS: client keys the local limiter remembers
MAX_CONCURRENT = 1_000_000  # a shedding rule's max_concurrent / min_concurrent
MAX_QUEUE = 1_000_000  # a shedding rule's queue
MAX_COUNT = 1_000_000  # other counts: breaker thresholds, trial calls, fallback failures, probes

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
# A period in a rate may be a bare unit ("m") or a count and a unit ("30s").
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_RATE_WORDS = {"sec": "s", "second": "s", "min": "m", "minute": "m", "hour": "h", "day": "d"}


def parse_duration(value: str | int | float, *, maximum: float = MAX_DURATION) -> float:
    """Return a duration in seconds, from 0 up to ``maximum`` (a year unless told); numbers
    are taken as seconds, strings need a unit.

    >>> parse_duration("800ms"), parse_duration("30s"), parse_duration("5m")
    (0.8, 30.0, 300.0)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{safe_repr(value)} is not a duration")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{safe_repr(value)} is not a duration; write a number and a unit, like '800ms', "
                "'30s', '5m', '1h'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        try:
            seconds = float(value)
        except OverflowError:  # an int past float's range
            seconds = float("inf")
    if not 0 <= seconds < float("inf"):  # NaN fails both
        raise ValueError(f"{safe_repr(value)} is not a duration: it must be a finite number >= 0")
    if seconds > maximum:
        raise ValueError(
            f"{safe_repr(value)} is too long a duration: the most is {_describe(maximum)}"
        )
    return seconds


def parse_deadline_budget(value: str | int | float) -> float:
    """A request budget: longer than zero, at most ``MAX_DEADLINE`` (one day).

    >>> parse_deadline_budget("800ms")
    0.8
    """
    seconds = parse_duration(value, maximum=MAX_DEADLINE)
    if seconds <= 0:
        raise ValueError(
            f"{safe_repr(value)}: a budget must be longer than zero "
            "(a zero budget answers every request 504)"
        )
    return seconds


def bounded_int(value: object, *, minimum: int, maximum: int) -> int | None:
    """``value`` when it is an int (not a bool) in ``minimum..maximum``, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        return None
    return value


def safe_str(value: object) -> str:
    """A setting's key as text for a message: itself if a string, else ``safe_repr``."""
    return value if isinstance(value, str) else safe_repr(value)


def safe_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message: short, and never raising (``repr`` raises for an
    int of more than 4300 digits, and a 10,000-character value in a message helps nobody)."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of {len(hex(value)) * 1.2:.0f}-odd digits"
    try:
        text = repr(value)
    except Exception:  # a value whose __repr__ fails (or is too deep) still gets named
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(seconds: float) -> str:
    if seconds >= DAY and seconds % DAY == 0:
        days = int(seconds // DAY)
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{seconds:g}s"


_DISPLAY_UNITS = tuple(reversed(_UNIT_SECONDS.items()))  # the largest first


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period`` seconds."""

    limit: int
    period: float

    def __str__(self) -> str:
        """The rate as settings write it, in the largest whole unit: ``100/m``, ``100/30s``
        (what the admin and ``resilience_status`` show; ``parse_rate`` reads it back)."""
        for unit, seconds in _DISPLAY_UNITS:
            count = round(self.period / seconds, 6)
            if count >= 1 and count.is_integer():
                return f"{self.limit}/{unit}" if count == 1 else f"{self.limit}/{int(count)}{unit}"
        return f"{self.limit}/{self.period * 1000:g}ms"


def parse_rate(value: str | Rate) -> Rate:
    """Parse ``"100/m"``, ``"10/s"``, ``"5000/h"``, ``"100/30s"``.

    >>> parse_rate("100/30s")
    Rate(limit=100, period=30.0)
    """
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{safe_repr(value)} is not a rate; write it like '100/m' or '100/30s'")
    text = value.strip().lower()
    for word, unit in _RATE_WORDS.items():
        if text.endswith("/" + word):
            text = text[: -len(word)] + unit
            break
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"{safe_repr(value)} is not a rate; write a count, a slash and a period, like '100/m', "
            "'10/s', '5000/h' or '100/30s'"
        )
    digits = match.group(1).lstrip("0") or "0"
    # Compared as text first: int() of a 5,000-digit string raises.
    limit = int(digits) if len(digits) <= 12 else MAX_RATE_COUNT + 1
    count = float(match.group(2)) if match.group(2) else 1.0
    period = count * _UNIT_SECONDS[match.group(3)]
    if limit <= 0:
        raise ValueError(f"{safe_repr(value)}: the count must be at least 1")
    if limit > MAX_RATE_COUNT:
        raise ValueError(f"{safe_repr(value)}: the count must be at most {MAX_RATE_COUNT:_}")
    if period <= 0:
        raise ValueError(f"{safe_repr(value)}: the period must be longer than zero")
    if not MIN_RATE_PERIOD <= period <= MAX_RATE_PERIOD:
        raise ValueError(
            f"{safe_repr(value)}: the period must be from 1ms up to {_describe(MAX_RATE_PERIOD)}"
        )
    return Rate(limit=limit, period=period)
