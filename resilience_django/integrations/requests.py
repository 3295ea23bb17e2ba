"""A requests adapter that carries the request's deadline downstream, with breaker, retry, bulkhead.

>>> import requests
>>> from resilience_django.integrations.requests import ResilientAdapter
>>> session = requests.Session()
>>> session.mount("http://", ResilientAdapter(breaker="pricing"))

The same options and order as the httpx transports (docs/retries.md); timeouts
cut short by the budget: docs/deadlines.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectTimeout, ReadTimeout

from ..deadline import DeadlineExceeded
from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead
from ._outbound import IDEMPOTENT_METHODS, Kinds, bound, make_guard

__all__ = ["BulkheadFull", "DeadlineConnectTimeout", "DeadlineReadTimeout", "ResilientAdapter"]


class DeadlineConnectTimeout(DeadlineExceeded, ConnectTimeout):
    """``requests.exceptions.ConnectTimeout`` cut short by the request's budget."""

    def __init__(self, message: str, *, request: PreparedRequest | None = None) -> None:
        ConnectTimeout.__init__(self, message, request=request)


class DeadlineReadTimeout(DeadlineExceeded, ReadTimeout):
    """``requests.exceptions.ReadTimeout`` cut short by the request's budget."""

    def __init__(self, message: str, *, request: PreparedRequest | None = None) -> None:
        ReadTimeout.__init__(self, message, request=request)


_KINDS: Kinds = (
    (ConnectTimeout, "connect", DeadlineConnectTimeout),
    (ReadTimeout, "read", DeadlineReadTimeout),
)


class ResilientAdapter(HTTPAdapter):
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
        self._guard = make_guard(
            breaker=breaker, retry=retry, bulkhead=bulkhead, retry_methods=retry_methods
        )

    def send(  # type: ignore[override]
        self, request: PreparedRequest, timeout: Any = None, **kwargs: Any
    ) -> Response:
        if self._guard is None:
            return self._send(request, timeout, kwargs)
        host = urlsplit(request.url or "").hostname or ""
        return self._guard.call(
            request.method or "GET", host, lambda: self._send(request, timeout, kwargs)
        )

    def _send(self, request: PreparedRequest, timeout: Any, kwargs: dict[str, Any]) -> Response:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        timeouts = {"connect": connect, "read": read}
        with bound(request, timeouts, _KINDS, self._margin) as cut:
            if cut.phases:
                timeout = (timeouts["connect"], timeouts["read"])
            response = super().send(request, timeout=timeout, **kwargs)
        if self._guard is not None and response.status_code >= 429:
            # An error answer may be retried and dropped: read it now, which
            # puts its connection back in the pool.
            _ = response.content
        return response
