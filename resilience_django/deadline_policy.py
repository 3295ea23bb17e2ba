"""How a request's budget is chosen: route budget, default, incoming headers.

Framework-free so the Django middleware and the ASGI wrapper choose the same
way: both hand over a header getter and the path, and get a ``Deadline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import metrics
from .clock import monotonic
from .conf import DeadlineSettings
from .deadline import Deadline, parse_header
from .routes import RouteIndex

__all__ = ["DeadlinePolicy"]

logger = logging.getLogger("resilience_django.deadline")


class DeadlinePolicy:
    __slots__ = (
        "_exempt_streams",
        "_path_index",
        "_view_routes",
        "default",
        "header_meta_keys",
        "headers",
        "margin",
        "needs_view_name",
    )

    def __init__(self, settings: DeadlineSettings) -> None:
        self.default = settings.default
        self.headers = settings.headers
        # Django's META spells headers as HTTP_GRPC_TIMEOUT; computed once here.
        self.header_meta_keys = tuple(
            (name, "HTTP_" + name.upper().replace("-", "_")) for name in settings.headers
        )
        # First match wins, in settings-then-admin order; the index skips the
        # routes whose prefix the path does not start with.
        self._path_index = RouteIndex(
            (r.matcher, r) for r in settings.routes if not r.matcher.needs_view_name
        )
        self._view_routes = tuple(r for r in settings.routes if r.matcher.needs_view_name)
        self.margin = settings.outbound_margin
        # Some route budget names a view: tighten once the URL is resolved.
        self.needs_view_name = bool(self._view_routes)
        self._exempt_streams = settings.exempt_streams

    def route_budget(self, method: str, path: str) -> tuple[float | None, str]:
        for route in self._path_index.candidates(path):
            if route.matcher.matches(method, path):
                return route.budget, route.label
        return self.default, "default"

    def view_budget(
        self, method: str, path: str, view_name: str | None
    ) -> tuple[float, str] | None:
        """The budget of a route named by URL name, known once the URL is resolved."""
        for route in self._view_routes:
            if route.matcher.matches(method, path, view_name):
                return route.budget, route.label
        return None

    def exempts_stream(self, method: str, path: str, view_name: str | None) -> bool:
        """Whether a body streamed for this route may run past the deadline
        (``DEADLINE["EXEMPT_STREAMS"]``); ``view_name`` is ``None`` before the URL
        is resolved, when only path routes can match."""
        return any(m.matches(method, path, view_name) for m in self._exempt_streams)

    def header_budget(self, get: Callable[[str], str | None]) -> float | None:
        """The tightest valid budget the caller sent; malformed values are counted and ignored."""
        tightest: float | None = None
        for name, meta_key in self.header_meta_keys:
            value = get(meta_key)
            if value is None:
                continue
            seconds = parse_header(name, value)
            if seconds is None:
                metrics.bad_header(name)
                logger.debug("ignored malformed %s header %r", name, value[:64])
                continue
            if tightest is None or seconds < tightest:
                tightest = seconds
        return tightest

    def start(
        self,
        method: str,
        path: str,
        get_meta: Callable[[str], str | None],
        started_at: float | None = None,
    ) -> Deadline | None:
        """The request's deadline, or ``None`` when no budget applies at all."""
        budget, label = self.route_budget(method, path)
        incoming = self.header_budget(get_meta) if self.header_meta_keys else None
        if incoming is not None and (budget is None or incoming < budget):
            budget = incoming
        if budget is None:
            return None
        return Deadline(
            budget,
            started_at=monotonic() if started_at is None else started_at,
            route=label,
        )
