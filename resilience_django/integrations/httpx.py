"""httpx transports that carry the request's deadline downstream, with breaker, retry, bulkhead.

>>> import httpx
>>> from resilience_django.integrations.httpx import ResilientTransport
>>> client = httpx.Client(transport=ResilientTransport(breaker="pricing"))

Inside a request each attempt's timeouts are capped at the remaining budget
and the call carries ``X-Timeout-Ms`` (remaining minus a safety margin); with
no budget left the call is refused with ``DeadlineExceeded`` before it starts.
``breaker="name"`` counts 5xx answers, connection errors and timeouts against
that breaker and raises ``CircuitOpen`` while it is open; ``retry=`` (a
``resilience_django.retry(...)`` policy) retries idempotent methods;
``bulkhead=`` bounds concurrent calls.  The order is documented in
``integrations/_outbound.py``.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead
from ._outbound import IDEMPOTENT_METHODS, TIMEOUT_HEADER, make_guard, outbound_budget

__all__ = ["AsyncResilientTransport", "BulkheadFull", "ResilientTransport"]


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


def _status(response: httpx.Response) -> int:
    return response.status_code


class _Options:
    __slots__ = ("guard", "margin")

    def __init__(
        self,
        margin: float | None,
        breaker: str | None,
        retry: RetryPolicy | None,
        bulkhead: Bulkhead | None,
        retry_methods: frozenset[str],
    ) -> None:
        self.margin = margin
        self.guard = make_guard(
            breaker=breaker, retry=retry, bulkhead=bulkhead, retry_methods=retry_methods
        )


class ResilientTransport(httpx.BaseTransport):
    """Wraps another sync transport (``httpx.HTTPTransport()`` by default)."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        margin: float | None = None,
        breaker: str | None = None,
        retry: RetryPolicy | None = None,
        bulkhead: Bulkhead | None = None,
        retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._options = _Options(margin, breaker, retry, bulkhead, retry_methods)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        options = self._options
        if options.guard is None:
            _apply_deadline(request, options.margin)
            return self._transport.handle_request(request)

        def attempt() -> httpx.Response:
            _apply_deadline(request, options.margin)
            response = self._transport.handle_request(request)
            if response.status_code >= 429:
                # An error answer may be retried and dropped: read it now so
                # dropping it leaks no connection.
                response.read()
            return response

        return options.guard.call(request.method, request.url.host, attempt, _status)

    def close(self) -> None:
        self._transport.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """Wraps another async transport (``httpx.AsyncHTTPTransport()`` by default)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        margin: float | None = None,
        breaker: str | None = None,
        retry: RetryPolicy | None = None,
        bulkhead: Bulkhead | None = None,
        retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._options = _Options(margin, breaker, retry, bulkhead, retry_methods)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        options = self._options
        if options.guard is None:
            _apply_deadline(request, options.margin)
            return await self._transport.handle_async_request(request)

        async def attempt() -> httpx.Response:
            _apply_deadline(request, options.margin)
            response = await self._transport.handle_async_request(request)
            if response.status_code >= 429:
                await response.aread()
            return response

        return await options.guard.acall(request.method, request.url.host, attempt, _status)

    async def aclose(self) -> None:
        await self._transport.aclose()
