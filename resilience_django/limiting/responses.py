"""The 429 answer, built in one place so it can be replaced in one place.

It goes through ``resilience_django.responses.rate_limited``, which honours
``RESILIENCE["RESPONSE_HANDLERS"]["rate_limited"]`` (the same mechanism as the
504): JSON ``{"error": "rate_limited", "retry_after": n, ...}`` for clients
that accept JSON, short text otherwise, an integer ``Retry-After`` rounded up
and the ``RateLimit-Policy``/``RateLimit`` headers.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase

from .. import responses
from .engine import LimitResult

__all__ = ["rate_limited_response"]


def rate_limited_response(request: Any, result: LimitResult) -> HttpResponseBase:
    """The response for a request ``result`` rejected; ``request`` may be an ASGI shim."""
    # Retry-After is at least one second: "0" would invite an instant retry
    # that the window, rounding aside, has not yet made room for.
    return responses.rate_limited(
        request,
        rules=result.rejected,
        retry_after=max(result.retry_after, 1.0),
        headers=result.headers,
    )
