"""A requests adapter that carries the request's deadline downstream.

>>> import requests
>>> from resilience_django.integrations.requests import ResilientAdapter
>>> session = requests.Session()
>>> session.mount("http://", ResilientAdapter()); session.mount("https://", ResilientAdapter())
"""

from __future__ import annotations

from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from ._outbound import TIMEOUT_HEADER, outbound_budget

__all__ = ["ResilientAdapter"]


def _cap(timeout: Any, left: float) -> Any:
    if timeout is None:
        return left
    if isinstance(timeout, tuple):
        return tuple(left if t is None else min(t, left) for t in timeout)
    return min(float(timeout), left)


class ResilientAdapter(HTTPAdapter):
    def __init__(self, *args: Any, margin: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._margin = margin

    def send(  # type: ignore[override]
        self, request: PreparedRequest, timeout: Any = None, **kwargs: Any
    ) -> Response:
        budget = outbound_budget(self._margin)
        if budget is not None:
            left, announce = budget
            timeout = _cap(timeout, left)
            request.headers[TIMEOUT_HEADER] = str(announce)
        return super().send(request, timeout=timeout, **kwargs)
