"""A requests adapter that carries the request's deadline downstream, with breaker, retry, bulkhead.

>>> import requests
>>> from resilience_django.integrations.requests import ResilientAdapter
>>> session = requests.Session()
>>> session.mount("http://", ResilientAdapter(breaker="pricing"))

The same options and order as the httpx transports (see ``_outbound.py``).

A connect or read timeout that the budget cut short (the budget, not the
``timeout=`` given to requests, was the smaller one) is raised as
:class:`DeadlineConnectTimeout` / :class:`DeadlineReadTimeout`: both a
``DeadlineExceeded`` (no breaker verdict, a 504 from the middleware) and the
requests exception they replace, with the original as ``__cause__``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectTimeout, ReadTimeout, Timeout

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

__all__ = ["BulkheadFull", "DeadlineConnectTimeout", "DeadlineReadTimeout", "ResilientAdapter"]


class DeadlineConnectTimeout(DeadlineExceeded, ConnectTimeout):
    """``requests.exceptions.ConnectTimeout`` cut short by the request's budget."""

    def __init__(self, message: str, *, request: PreparedRequest | None = None) -> None:
        ConnectTimeout.__init__(self, message, request=request)


class DeadlineReadTimeout(DeadlineExceeded, ReadTimeout):
    """``requests.exceptions.ReadTimeout`` cut short by the request's budget."""

    def __init__(self, message: str, *, request: PreparedRequest | None = None) -> None:
        ReadTimeout.__init__(self, message, request=request)


def _cap(timeout: Any, left: float) -> tuple[Any, tuple[bool, bool]]:
    """``timeout`` capped at ``left``, and whether the budget set the (connect, read) timeouts."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = None if timeout is None else float(timeout)
    cut = (connect is None or left < connect, read is None or left < read)
    capped = (left if cut[0] else connect, left if cut[1] else read)
    return capped, cut


def _cut_short(exc: Timeout, cut: tuple[bool, bool], request: PreparedRequest) -> Timeout | None:
    """Ours in place of ``exc`` when the budget set the timeout that fired, else ``None``."""
    if isinstance(exc, DeadlineExceeded):
        return None
    if isinstance(exc, ConnectTimeout):
        return DeadlineConnectTimeout(cut_short_message(exc), request=request) if cut[0] else None
    if isinstance(exc, ReadTimeout):
        return DeadlineReadTimeout(cut_short_message(exc), request=request) if cut[1] else None
    return None


def _status(response: Response) -> int:
    return response.status_code


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
        def attempt() -> Response:
            capped, cut = timeout, (False, False)
            budget = outbound_budget(self._margin)
            if budget is not None:
                left, announce = budget
                capped, cut = _cap(timeout, left)
                request.headers[TIMEOUT_HEADER] = str(announce)
            try:
                response = super(ResilientAdapter, self).send(request, timeout=capped, **kwargs)
            except Timeout as exc:
                ours = _cut_short(exc, cut, request)
                if ours is None:
                    raise
                raise ours from exc
            if self._guard is not None and response.status_code >= 429:
                # An error answer may be retried and dropped: read it now, which
                # puts its connection back in the pool.
                _ = response.content
            return response

        if self._guard is None:
            return attempt()
        host = urlsplit(request.url or "").hostname or ""
        return self._guard.call(request.method or "GET", host, attempt, _status)
