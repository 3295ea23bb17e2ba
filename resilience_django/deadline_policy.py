"""How a request's budget is chosen: route budget, default, incoming headers.

Framework-free so the Django middleware and the ASGI wrapper choose the same
way: both hand over a header getter and the path, and get a ``Deadline``.
``resilience_django.conf`` parses ``RESILIENCE["DEADLINE"]`` into the
``DeadlineSettings`` defined here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import clock as _clock
from . import metrics
from .deadline import Deadline, parse_header
from .routes import RouteIndex, RouteMatcher

__all__ = ["DeadlinePolicy", "DeadlineSettings", "RouteBudget"]

logger = logging.getLogger("resilience_django.deadline")

_EMPTY: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class RouteBudget:
    """A route's budget: ``DEADLINE["ROUTES"]`` entries and admin route deadlines."""

    matcher: RouteMatcher
    budget: float
    label: str


@dataclass(frozen=True, slots=True)
class DeadlineSettings:
    """``RESILIENCE["DEADLINE"]``, parsed (by ``conf``)."""

    default: float | None = 30.0
    headers: tuple[str, ...] = ("grpc-timeout", "x-timeout-ms")
    routes: tuple[RouteBudget, ...] = ()
    # Taken off the remaining budget before it is sent downstream, so the
    # downstream's answer has time to travel back before our own deadline.
    outbound_margin: float = 0.010
    # Routes whose streamed bodies may outlive the budget (server-sent events,
    # downloads): the deadline covers their view, not the body it streams.
    exempt_streams: tuple[RouteMatcher, ...] = ()

    @property
    def has_view_routes(self) -> bool:
        return any(r.matcher.needs_view_name for r in self.routes)


class DeadlinePolicy:
    __slots__ = (
        "_exempt_streams",
        "_path_index",
        "_raw_names",
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
        # The same headers as an ASGI server spells them (lower-case bytes), for
        # one pass over a scope's headers: raw name -> META key.
        self._raw_names = {
            name.lower().encode("latin-1"): meta_key for name, meta_key in self.header_meta_keys
        }
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
        # route_budget() and header_budget() written out: this runs on every
        # request, and nearly every request sends no deadline header.
        budget, label = self.default, "default"
        for route in self._path_index.candidates(path):
            if route.matcher.matches(method, path):
                budget, label = route.budget, route.label
                break
        for _, meta_key in self.header_meta_keys:
            if get_meta(meta_key) is not None:
                incoming = self.header_budget(get_meta)
                if incoming is not None and (budget is None or incoming < budget):
                    budget = incoming
                break
        if budget is None:
            return None
        return Deadline(
            budget, started_at=_clock.source() if started_at is None else started_at, route=label
        )

    def start_scope(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]], started_at: float
    ) -> Deadline | None:
        """``start`` for an ASGI scope's raw ``headers``: one pass, decoding only ours."""
        raw_names = self._raw_names
        found: dict[str, str] | None = None
        if raw_names:
            for name, value in headers:
                meta_key = raw_names.get(name)
                if meta_key is not None:
                    if found is None:
                        found = {}
                    # The first one counts, as a header getter's would.
                    found.setdefault(meta_key, value.decode("latin-1"))
        return self.start(
            method, path, (_EMPTY if found is None else found).get, started_at=started_at
        )
