"""A requests adapter doing what the httpx transports do (docs/retries.md, docs/deadlines.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectTimeout, ReadTimeout, Timeout
from urllib3.exceptions import TimeoutStateError
from urllib3.util import Timeout as Timeout3

from ..deadline import DeadlineExceeded
from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead
from ._outbound import IDEMPOTENT_METHODS, Kinds, OutboundGuard, bound

__all__ = ["BulkheadFull", "DeadlineConnectTimeout", "DeadlineReadTimeout", "ResilientAdapter"]


class _DeadlineTimeout(DeadlineExceeded, Timeout):
    def __init__(self, message: str, *, request: PreparedRequest | None = None) -> None:
        Timeout.__init__(self, message, request=request)


class DeadlineConnectTimeout(_DeadlineTimeout, ConnectTimeout):
    """``requests.exceptions.ConnectTimeout`` cut short by the request's budget."""


class DeadlineReadTimeout(_DeadlineTimeout, ReadTimeout):
    """``requests.exceptions.ReadTimeout`` cut short by the request's budget."""


_KINDS: Kinds = (
    (ConnectTimeout, "connect", DeadlineConnectTimeout),
    (ReadTimeout, "read", DeadlineReadTimeout),
)


class ResilientAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` to mount on a ``requests.Session``, with the httpx transports' options."""

    def __init__(
        self,
        *args: Any,
        margin: float | None = None,
        breaker: str | None = None,
        retry: RetryPolicy | None = None,
        bulkhead: Bulkhead | None = None,
        retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._margin = margin
        self._guard = OutboundGuard(
            breaker=breaker, retry=retry, bulkhead=bulkhead, retry_methods=retry_methods
        )

    def send(  # type: ignore[override]
        self, request: PreparedRequest, timeout: Any = None, **kwargs: Any
    ) -> Response:
        host = urlsplit(request.url or "").hostname or ""
        replayable = request.body is None or isinstance(request.body, bytes | bytearray | str)
        return self._guard.call(
            request.method or "GET", host, lambda: self._send(request, timeout, kwargs), replayable
        )

    def _send(self, request: PreparedRequest, timeout: Any, kwargs: dict[str, Any]) -> Response:
        total = None
        if isinstance(timeout, Timeout3):
            # requests also takes urllib3's Timeout: its phases, under its total.
            total = timeout.total
            connect, read = _phases(timeout)
        else:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        timeouts = {"connect": connect, "read": read}
        with bound(request, timeouts, _KINDS, self._margin) as cut:
            if cut.phases:
                timeout = (timeouts["connect"], timeouts["read"])
                if total is not None:
                    timeout = Timeout3(connect=timeout[0], read=timeout[1], total=total)
            return super().send(request, timeout=timeout, **kwargs)


def _phases(timeout: Timeout3) -> tuple[float | None, float | None]:
    """A urllib3 ``Timeout``'s connect and read timeouts (``None``: none), at most its total."""
    connect = Timeout3.resolve_default_timeout(timeout.connect_timeout)
    total = Timeout3.resolve_default_timeout(timeout.total)
    try:
        read = Timeout3.resolve_default_timeout(timeout.read_timeout)
    except TimeoutStateError:  # a total and no read timeout: the total bounds the read
        read = total
    if total is not None and (read is None or total < read):
        read = total
    return connect, read
