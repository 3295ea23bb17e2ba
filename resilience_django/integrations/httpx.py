"""httpx transports that carry the request's deadline downstream.

>>> import httpx
>>> from resilience_django.integrations.httpx import ResilientTransport
>>> client = httpx.Client(transport=ResilientTransport())

Inside a request each call's timeouts are capped at the remaining budget and
the call carries ``X-Timeout-Ms`` (remaining minus a safety margin); with no
budget left the call is refused with ``DeadlineExceeded`` before it starts.
"""

from __future__ import annotations

from typing import Any

import httpx

from ._outbound import TIMEOUT_HEADER, outbound_budget

__all__ = ["AsyncResilientTransport", "ResilientTransport"]


def _apply_deadline(request: httpx.Request, margin: float | None) -> None:
    budget = outbound_budget(margin)
    if budget is None:
        return
    left, announce = budget
    timeouts: dict[str, Any] = dict(request.extensions.get("timeout") or {})
    for phase in ("connect", "read", "write", "pool"):
        current = timeouts.get(phase)
        timeouts[phase] = left if current is None else min(current, left)
    request.extensions["timeout"] = timeouts
    request.headers[TIMEOUT_HEADER] = str(announce)


class ResilientTransport(httpx.BaseTransport):
    """Wraps another sync transport (``httpx.HTTPTransport()`` by default)."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        margin: float | None = None,
    ) -> None:
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._margin = margin

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _apply_deadline(request, self._margin)
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """Wraps another async transport (``httpx.AsyncHTTPTransport()`` by default)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        margin: float | None = None,
    ) -> None:
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._margin = margin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _apply_deadline(request, self._margin)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()
