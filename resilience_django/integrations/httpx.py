"""httpx transports carrying the request's deadline, breaker, retry, bulkhead (docs/retries.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar, Unpack

import httpx

from ..deadline import Deadline, DeadlineExceeded, _current
from ..exceptions import BulkheadFull
from ._outbound import CutShort, GuardOptions, Kinds, OutboundGuard, bound, cut_short_message

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
    pass


class DeadlineReadTimeout(DeadlineTimeout, httpx.ReadTimeout):
    pass


class DeadlineWriteTimeout(DeadlineTimeout, httpx.WriteTimeout):
    pass


class DeadlinePoolTimeout(DeadlineTimeout, httpx.PoolTimeout):
    pass


_KINDS: Kinds = (
    (httpx.ConnectTimeout, "connect", DeadlineConnectTimeout),
    (httpx.ReadTimeout, "read", DeadlineReadTimeout),
    (httpx.WriteTimeout, "write", DeadlineWriteTimeout),
    (httpx.PoolTimeout, "pool", DeadlinePoolTimeout),
)
_T = TypeVar("_T", httpx.BaseTransport, httpx.AsyncBaseTransport)


class _CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body read under the request's deadline: a read that stalls past it, or a body still
    trickling in once it is spent, raises ours."""

    def __init__(self, stream: Any, cut: CutShort, deadline: Deadline) -> None:
        self._stream, self._cut, self._deadline = stream, cut, deadline

    def __iter__(self) -> Iterator[bytes]:
        with self._cut:
            for chunk in self._stream:
                self._check()
                yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self._cut:
            async for chunk in self._stream:
                self._check()
                yield chunk

    def _check(self) -> None:
        if self._deadline.expired():
            message = cut_short_message("the body was still arriving")
            raise DeadlineReadTimeout(message, request=self._cut.request)

    def close(self) -> None:
        self._stream.close()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Resilient(Generic[_T]):
    _default: Callable[[], Any]  # the transport wrapped when none is given
    _stream: type[httpx.SyncByteStream | httpx.AsyncByteStream]  # the body's kind

    def __init__(
        self,
        transport: _T | None = None,
        *,
        margin: float | None = None,
        **options: Unpack[GuardOptions],
    ) -> None:
        self._transport: _T = transport if transport is not None else self._default()
        self._margin = margin
        self._guard = OutboundGuard(**options)

    def _bound(self, request: httpx.Request) -> CutShort:
        timeouts: dict[str, Any] = {"connect": None, "read": None, "write": None, "pool": None}
        timeouts.update(request.extensions.get("timeout") or {})
        cut = bound(request, timeouts, _KINDS, self._margin)
        if cut.phases:
            request.extensions["timeout"] = timeouts
        return cut

    def _with_body(self, response: httpx.Response, cut: CutShort) -> httpx.Response:
        # The body is read after the transport returns: under the same read timeout and deadline.
        deadline = _current.get()
        if deadline is not None and isinstance(response.stream, self._stream):
            read = CutShort(_KINDS[1:2], cut.phases, cut.request)
            response.stream = _CutStream(response.stream, read, deadline)
        return response


class ResilientTransport(_Resilient[httpx.BaseTransport], httpx.BaseTransport):
    """Wraps another sync transport (``httpx.HTTPTransport()`` by default)."""

    _default = httpx.HTTPTransport
    _stream = httpx.SyncByteStream

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        replayable = isinstance(request.stream, httpx.ByteStream)  # bytes, not a stream
        return self._guard.call(
            request.method, request.url.host, lambda: self._send(request), replayable
        )

    def _send(self, request: httpx.Request) -> httpx.Response:
        with self._bound(request) as cut:
            return self._with_body(self._transport.handle_request(request), cut)

    def close(self) -> None:
        self._transport.close()


class AsyncResilientTransport(_Resilient[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport):
    """Wraps another async transport (``httpx.AsyncHTTPTransport()`` by default)."""

    _default = httpx.AsyncHTTPTransport
    _stream = httpx.AsyncByteStream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        replayable = isinstance(request.stream, httpx.ByteStream)
        return await self._guard.acall(
            request.method, request.url.host, lambda: self._send(request), replayable
        )

    async def _send(self, request: httpx.Request) -> httpx.Response:
        with self._bound(request) as cut:
            return self._with_body(await self._transport.handle_async_request(request), cut)

    async def aclose(self) -> None:
        await self._transport.aclose()
