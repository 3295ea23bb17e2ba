"""A requests adapter that carries the request's deadline downstream, with breaker, retry, bulkhead.

>>> import requests
>>> from resilience_django.integrations.requests import ResilientAdapter
>>> session = requests.Session()
>>> session.mount("http://", ResilientAdapter(breaker="pricing"))

The same options and order as the httpx transports (see ``_outbound.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead
from ._outbound import IDEMPOTENT_METHODS, TIMEOUT_HEADER, make_guard, outbound_budget

__all__ = ["BulkheadFull", "ResilientAdapter"]


def _cap(timeout: Any, left: float) -> Any:
    if timeout is None:
        return left
    if isinstance(timeout, tuple):
        return tuple(left if t is None else min(t, left) for t in timeout)
    return min(float(timeout), left)


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
            capped = timeout
            budget = outbound_budget(self._margin)
            if budget is not None:
                left, announce = budget
                capped = _cap(timeout, left)
                request.headers[TIMEOUT_HEADER] = str(announce)
            response = super(ResilientAdapter, self).send(request, timeout=capped, **kwargs)
            if self._guard is not None and response.status_code >= 429:
                # An error answer may be retried and dropped: read it now, which
                # puts its connection back in the pool.
                _ = response.content
            return response

        if self._guard is None:
            return attempt()
        host = urlsplit(request.url or "").hostname or ""
        return self._guard.call(request.method or "GET", host, attempt, _status)
