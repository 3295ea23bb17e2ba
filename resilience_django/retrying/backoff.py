"""Backoff delays and what an answer says about retrying; duck-typed (docs/retries.md)."""

from __future__ import annotations

import email.utils
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from ..clock import Clock

__all__ = ["RETRY_STATUSES", "default_retry_on", "default_retry_on_result",
           "full_jitter", "is_circuit_open", "parse_retry_after", "response_of",
           "retry_after_of", "status_of"]  # fmt: skip

# 502/504: a gateway's upstream failed or timed out; 429 and 503 say "later" (Retry-After).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def full_jitter(retry: int, base: float, cap: float, random: Callable[[], float]) -> float:
    """Sleep before retry number ``retry`` (0 for the first): ``random() * min(cap, base*2**n)``.

    >>> full_jitter(3, 0.1, 2.0, lambda: 0.5)
    0.4
    """
    # Cap the exponent first: 2**retry would overflow a float past a thousand attempts.
    return random() * (cap if retry >= 63 else min(cap, base * (1 << retry)))


def parse_retry_after(value: str, *, wall: Clock = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date (a date in
    the past: 0.0); anything unparseable is ``None``.

    >>> parse_retry_after("120"), parse_retry_after("soon")
    (120.0, None)
    """
    try:
        seconds = float(value)  # not in the RFC, but some servers send "1.5"
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 9110 dates are GMT: one without a zone ("-0000") is refused
    return None if when.tzinfo is None else max(0.0, when.timestamp() - wall())


def response_of(outcome: object) -> Any | None:
    """The HTTP response in a result or an exception, recognised by its attributes."""
    try:
        if hasattr(outcome, "status_code") and hasattr(outcome, "headers"):
            return outcome
        response = (
            getattr(outcome, "response", None) if isinstance(outcome, BaseException) else None
        )
        if hasattr(response, "status_code") and hasattr(response, "headers"):
            return response
    except Exception:  # a property that raises: no answer to read, and the outcome stands
        pass
    return None


def status_of(outcome: object) -> int | None:
    status = getattr(response_of(outcome), "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_of(outcome: object, *, wall: Clock = time.time) -> float | None:
    """The ``Retry-After`` of a 429/503 answer in ``outcome``, in seconds, else ``None``."""
    response = response_of(outcome)
    if response is None or response.status_code not in _RETRY_AFTER_STATUSES:
        return None
    # httpx.Headers and requests' CaseInsensitiveDict: .get() is case-insensitive.
    get = getattr(response.headers, "get", None)
    value = get("Retry-After") if callable(get) else None
    return parse_retry_after(value, wall=wall) if isinstance(value, str) else None


def default_retry_on(exc: BaseException) -> bool:
    """Network failures, timeouts, and HTTP errors that carry a retryable status."""
    if isinstance(exc, ConnectionError | TimeoutError) or status_of(exc) in RETRY_STATUSES:
        return True
    # Look the libraries up only when something failed, and never import them.
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return True
    requests = sys.modules.get("requests")
    return requests is not None and isinstance(
        exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout
    )


def default_retry_on_result(result: object) -> bool:
    """An HTTP answer with status 429, 502, 503 or 504."""
    return status_of(result) in RETRY_STATUSES


def is_circuit_open(exc: BaseException) -> bool:
    """An open breaker's rejection; by name and attribute, so we need not import the breakers."""
    return type(exc).__name__ == "CircuitOpen" and hasattr(exc, "retry_after")
