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

When a timeout fires that the budget cut short (the budget, not the client's
own timeout, was the smaller one), the transport raises
:class:`DeadlineTimeout` instead of httpx's timeout: it is both a
``DeadlineExceeded`` (a breaker records no verdict, the middleware answers
504) and the httpx exception it replaces (``except httpx.ReadTimeout`` still
catches it; the original is its ``__cause__``).  A timeout of the client's own
that fires first stays httpx's, and counts against the breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from ..deadline import DeadlineExceeded
from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead
from ._outbound import (
    IDEMPOTENT_METHODS,
    TIMEOUT_HEADER,
    cut_short_message,
    make_guard,
    outbound_budget,
)

__all__ = [
    "AsyncResilientTransport",
    "BulkheadFull",
    "DeadlineConnectTimeout",
    "DeadlinePoolTimeout",
    "DeadlineReadTimeout",
    "DeadlineTimeout",
    "DeadlineWriteTimeout",
    "ResilientTransport",
]


class DeadlineTimeout(DeadlineExceeded, httpx.TimeoutException):
    """An httpx timeout that the request's budget cut short; also a ``DeadlineExceeded``."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        httpx.TimeoutException.__init__(self, message, request=request)


class DeadlineConnectTimeout(DeadlineTimeout, httpx.ConnectTimeout):
    """``httpx.ConnectTimeout`` cut short by the request's budget."""


class DeadlineReadTimeout(DeadlineTimeout, httpx.ReadTimeout):
    """``httpx.ReadTimeout`` cut short by the request's budget."""


class DeadlineWriteTimeout(DeadlineTimeout, httpx.WriteTimeout):
    """``httpx.WriteTimeout`` cut short by the request's budget."""


class DeadlinePoolTimeout(DeadlineTimeout, httpx.PoolTimeout):
    """``httpx.PoolTimeout`` cut short by the request's budget."""


# httpx's timeout types, the timeout phase each one is about, and ours.
_PHASES: tuple[tuple[type[httpx.TimeoutException], str, type[DeadlineTimeout]], ...] = (
    (httpx.ConnectTimeout, "connect", DeadlineConnectTimeout),
    (httpx.ReadTimeout, "read", DeadlineReadTimeout),
    (httpx.WriteTimeout, "write", DeadlineWriteTimeout),
    (httpx.PoolTimeout, "pool", DeadlinePoolTimeout),
)
_NONE: frozenset[str] = frozenset()


def _apply_deadline(request: httpx.Request, margin: float | None) -> frozenset[str]:
    """Cap the timeouts at the budget; the phases whose timeout the budget now sets."""
    budget = outbound_budget(margin)
    if budget is None:
        return _NONE
    left, announce = budget
    timeouts: dict[str, Any] = dict(request.extensions.get("timeout") or {})
    capped = set()
    for phase in ("connect", "read", "write", "pool"):
        current = timeouts.get(phase)
        if current is None or left < current:
            timeouts[phase] = left
            capped.add(phase)
    request.extensions["timeout"] = timeouts
    request.headers[TIMEOUT_HEADER] = str(announce)
    return frozenset(capped)


def _cut_short(
    exc: httpx.TimeoutException, capped: frozenset[str], request: httpx.Request
) -> DeadlineTimeout | None:
    """Ours in place of ``exc`` when the budget set the timeout that fired, else ``None``."""
    if isinstance(exc, DeadlineExceeded):
        return None  # already ours (a transport wrapping another)
    for kind, phase, ours in _PHASES:
        if isinstance(exc, kind):
            return ours(cut_short_message(exc), request=request) if phase in capped else None
    return None


def _guard_body(response: httpx.Response, capped: frozenset[str], request: httpx.Request) -> None:
    # The body is read after the transport returns (by the client, or the
    # caller of a stream), under the same capped read timeout.
    if "read" not in capped:
        return
    stream = response.stream
    if isinstance(stream, httpx.SyncByteStream):
        response.stream = _CutSyncStream(stream, request)
    elif isinstance(stream, httpx.AsyncByteStream):
        response.stream = _CutAsyncStream(stream, request)


class _CutSyncStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except httpx.ReadTimeout as exc:
            ours = _cut_short(exc, frozenset({"read"}), self._request)
            if ours is None:
                raise
            raise ours from exc

    def close(self) -> None:
        self._stream.close()


class _CutAsyncStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpx.ReadTimeout as exc:
            ours = _cut_short(exc, frozenset({"read"}), self._request)
            if ours is None:
                raise
            raise ours from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


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
            return self._send(request)

        def attempt() -> httpx.Response:
            response = self._send(request)
            if response.status_code >= 429:
                # An error answer may be retried and dropped: read it now so
                # dropping it leaks no connection.
                response.read()
            return response

        return options.guard.call(request.method, request.url.host, attempt, _status)

    def _send(self, request: httpx.Request) -> httpx.Response:
        capped = _apply_deadline(request, self._options.margin)
        try:
            response = self._transport.handle_request(request)
        except httpx.TimeoutException as exc:
            ours = _cut_short(exc, capped, request)
            if ours is None:
                raise
            raise ours from exc
        _guard_body(response, capped, request)
        return response

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
            return await self._send(request)

        async def attempt() -> httpx.Response:
            response = await self._send(request)
            if response.status_code >= 429:
                await response.aread()
            return response

        return await options.guard.acall(request.method, request.url.host, attempt, _status)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        capped = _apply_deadline(request, self._options.margin)
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException as exc:
            ours = _cut_short(exc, capped, request)
            if ours is None:
                raise
            raise ours from exc
        _guard_body(response, capped, request)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()
