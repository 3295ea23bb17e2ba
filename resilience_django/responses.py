"""The answers given instead of running the view: 429, 503 and 504 (docs/settings.md,
``RESPONSE_HANDLERS``); the one writer of the ``RateLimit-Policy``/``RateLimit`` pairs."""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from . import metrics
from .breakers.state import CircuitOpen
from .conf import get_settings
from .deadline import Deadline, DeadlineExceeded, _current
from .observability import otel

if TYPE_CHECKING:
    from .limiting.engine import LimitResult

__all__ = [
    "add_headers",
    "deadline_response",
    "rate_limited",
    "rate_limited_response",
    "unavailable",
]

logger = logging.getLogger("resilience_django.responses")


def whole_seconds(seconds: float) -> int:
    """``Retry-After`` seconds: rounded up, so a client that waits this long is not turned
    away; at most a day (an infinite or NaN wait has no whole number, and is no advice).

    >>> whole_seconds(54.875), whole_seconds(0.2), whole_seconds(0.0), whole_seconds(math.inf)
    (55, 1, 0, 86400)
    """
    if not seconds < 86_400:  # NaN too
        return 86_400
    return math.ceil(seconds) if seconds > 0 else 0


@functools.lru_cache(maxsize=64)
def _takes_exact(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` takes ``retry_after_exact``, by name or through ``**kwargs``."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything
        return True
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD or p.name == "retry_after_exact" for p in parameters
    )


def _build(
    request: HttpRequest | None,
    status: int,
    error: str,
    text: str,
    retry_after: float | None,
    headers: Iterable[tuple[str, str]] = (),
    **extra: Any,
) -> HttpResponse:
    response: HttpResponse
    if request is not None and "json" in request.META.get("HTTP_ACCEPT", ""):
        body: dict[str, Any] = {"error": error, "detail": text}
        if retry_after is not None:
            body["retry_after"] = whole_seconds(retry_after)
        response = JsonResponse({**body, **extra}, status=status)
    else:
        response = HttpResponse(
            text + "\n", status=status, content_type="text/plain; charset=utf-8"
        )
    if retry_after is not None:
        response["Retry-After"] = str(whole_seconds(retry_after))
    for name, value in headers:
        response[name] = value
    response["Cache-Control"] = "no-store"
    otel.mark_http_status(status)  # 5xx -> span status ERROR (HTTP semantic conventions)
    return response


def _custom(kind: str, request: Any, **details: Any) -> HttpResponse | None:
    """The user's handler for ``kind``, if any; a handler that fails gets the built-in answer
    (a broken handler must not turn a 429/503/504 into a 500)."""
    handler = get_settings().response_handlers.get(kind)
    if handler is None:
        return None
    if "retry_after" in details:
        exact = float(details["retry_after"])
        details["retry_after"] = whole_seconds(exact)
        # Only to the handlers that take it: a fixed keyword list keeps working.
        try:
            takes_exact = _takes_exact(handler)
        except TypeError:  # an unhashable callable: read its signature every time
            takes_exact = _takes_exact.__wrapped__(handler)
        if takes_exact:
            details["retry_after_exact"] = exact
    try:
        response: HttpResponse = handler(request, **details)
    except Exception:
        logger.exception("RESPONSE_HANDLERS[%r] raised; answering with the built-in response", kind)
        return None
    return response


def deadline_response(request: Any, deadline: Deadline | None) -> HttpResponse:
    """The 504 at ``deadline``, counted in ``resilience_deadline_exceeded_total``; ``None``:
    a ``DeadlineExceeded`` raised outside any request's deadline (not counted)."""
    route, budget = ("view", 0.0) if deadline is None else (deadline.route, deadline.budget)
    if deadline is not None:
        metrics.deadline_exceeded(route, budget=budget)
    return _custom("deadline", request, route=route, budget=budget) or _build(
        request,
        504,
        "deadline_exceeded",
        f"The request did not finish within its {budget * 1000:.0f} ms budget.",
        None,
    )


def for_exception(request: HttpRequest, exception: BaseException) -> HttpResponse | None:
    """Our own exceptions escaping a view or a middleware as their status codes, not a 500."""
    if isinstance(exception, DeadlineExceeded):
        return deadline_response(request, _current.get())
    if isinstance(exception, CircuitOpen):
        # An open breaker the view did not handle: "retry later", not a server bug.
        name, retry_after = exception.name, exception.retry_after
        return unavailable(request, reason="breaker_open", name=name, retry_after=retry_after)
    return None


def rate_limited(
    request: HttpRequest | None,
    *,
    rules: tuple[str, ...],
    retry_after: float,
    headers: Iterable[tuple[str, str]] = (),
) -> HttpResponse:
    headers = tuple(headers)
    custom = _custom("rate_limited", request, rules=rules, retry_after=retry_after, headers=headers)
    return custom or _build(
        request,
        429,
        "rate_limited",
        "Too many requests; retry later.",
        retry_after,
        headers,
        rules=list(rules),
    )


_UNAVAILABLE = {
    "breaker_open": "A dependency of this service is failing; retry later.",
    "shed": "The service is at capacity; retry later.",
}


def unavailable(
    request: HttpRequest | None, *, reason: str, name: str, retry_after: float
) -> HttpResponse:
    """503: a breaker is open or the request was shed; ``reason`` says which."""
    custom = _custom("unavailable", request, reason=reason, name=name, retry_after=retry_after)
    return custom or _build(
        request,
        503,
        reason,
        _UNAVAILABLE.get(reason, "Service unavailable; retry later."),
        max(retry_after, 1.0),
    )


def rate_limited_response(request: Any, result: LimitResult) -> HttpResponse:
    """The 429 for a request ``result`` rejected; ``request`` may be an ASGI shim."""
    # At least one second: "0" invites a retry the window has no room for yet.
    return rate_limited(
        request,
        rules=result.rejected,
        retry_after=max(result.retry_after, 1.0),
        headers=result.headers,
    )


def add_headers(response: Any, pairs: Sequence[tuple[str, str]]) -> None:
    """Set the ``RateLimit-Policy``/``RateLimit`` pairs on a Django response, through the
    public ``response.headers``: it validates each value (the private store would not)."""
    headers = response.headers
    for name, value in pairs:
        headers[name] = value
