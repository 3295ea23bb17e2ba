"""How a request's budget is chosen: route budget, default, incoming headers (framework-free,
so the Django middleware and the ASGI wrapper choose the same way)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import metrics
from .deadline import Deadline, parse_grpc_timeout, parse_timeout_ms
from .routes import RouteIndex, RouteMatcher
from .units import MAX_DEADLINE

__all__ = ["DeadlinePolicy", "DeadlineSettings", "RouteBudget"]

logger = logging.getLogger("resilience_django.deadline")


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
    # Kept off the budget sent downstream, for the answer's way back.
    outbound_margin: float = 0.010
    # Routes whose streamed bodies may outlive the budget (events, downloads).
    exempt_streams: tuple[RouteMatcher, ...] = ()


# The route-budget memo's bound, whatever paths and methods clients send: about 0.3 MB.
_MAX_BUDGETS = 1024
_MAX_CACHED_PATH = 128
# Values read from one header, the rest one malformed value: 8,000 commas cost nothing more.
_MAX_VALUES = 8


class DeadlinePolicy:
    def __init__(self, settings: DeadlineSettings) -> None:
        self.default = settings.default
        # (name, META key: HTTP_GRPC_TIMEOUT), and the same names as an ASGI server
        # spells them (lower-case bytes) -> META key, for one pass over a scope's headers.
        self.header_meta_keys = tuple(
            (name, "HTTP_" + name.upper().replace("-", "_")) for name in settings.headers
        )
        self._raw_names = {
            # "X_Timeout_Ms" is Django's HTTP_X_TIMEOUT_MS too: the X-Timeout-Ms header.
            name.lower().replace("_", "-").encode("latin-1"): meta_key
            for name, meta_key in self.header_meta_keys
        }
        # First match wins, in settings-then-admin order.
        self._path_index = RouteIndex(
            (r.matcher, r) for r in settings.routes if not r.matcher.needs_view_name
        )
        # Some route budget names a view: tighten once the URL is resolved.
        self._view_routes = tuple(r for r in settings.routes if r.matcher.needs_view_name)
        self.needs_view_name = bool(self._view_routes)
        self._exempt_streams = settings.exempt_streams
        # (method, path) -> (budget, label), bounded: paths come from clients.
        self._budgets: dict[tuple[str, str], tuple[float | None, str]] = {}

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
        (``DEADLINE["EXEMPT_STREAMS"]``); ``view_name`` ``None``: only path routes match."""
        return any(m.matches(method, path, view_name) for m in self._exempt_streams)

    def header_budget(self, meta: Mapping[str, str]) -> float | None:
        """The tightest valid budget the caller sent (a header sent twice is one comma-joined
        list, as servers join it); malformed values are counted and ignored."""
        tightest: float | None = None
        for name, meta_key in self.header_meta_keys:
            value = meta.get(meta_key)
            if value is None:
                continue
            parse = parse_grpc_timeout if name.lower() == "grpc-timeout" else parse_timeout_ms
            bad = False
            for part in value.split(",", _MAX_VALUES):
                seconds = parse(part)
                if seconds is None:
                    bad = True
                elif tightest is None or seconds < tightest:
                    tightest = seconds
            if bad:
                metrics.bad_header(name)
                logger.debug("ignored malformed %s header %r", name, value[:64])
        # At most MAX_DEADLINE: a grpc-timeout may ask for millennia, past socket timeouts.
        return tightest if tightest is None else min(tightest, MAX_DEADLINE)

    def start(
        self, method: str, path: str, meta: Mapping[str, str], started_at: float | None = None
    ) -> Deadline | None:
        """The request's deadline from its ``META`` (``HTTP_*`` keys); ``None``: no budget."""
        found = self._budgets.get((method, path))
        if found is None:
            found = self.default, "default"
            for route in self._path_index.candidates(path):
                if route.matcher.matches(method, path):
                    found = route.budget, route.label
                    break
            if len(path) <= _MAX_CACHED_PATH and len(method) <= _MAX_CACHED_PATH:
                if len(self._budgets) >= _MAX_BUDGETS:
                    self._budgets.clear()
                self._budgets[method, path] = found
        budget, label = found
        by_caller = False
        for _, meta_key in self.header_meta_keys:
            if meta_key in meta:
                incoming = self.header_budget(meta)
                if incoming is not None and (budget is None or incoming < budget):
                    budget, by_caller = incoming, True
                break
        if budget is None:
            return None
        deadline = Deadline(budget, started_at, label)  # None: now
        if by_caller:
            deadline.by_caller = True
        return deadline

    def start_scope(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]], started_at: float
    ) -> Deadline | None:
        """``start`` for an ASGI scope's raw ``headers``: one pass, decoding only ours."""
        raw_names = self._raw_names
        found: dict[str, str] = {}
        if raw_names:
            for name, value in headers:
                meta_key = raw_names.get(name)
                if meta_key is not None:
                    # Repeated: joined as Django joins them, so the tightest counts.
                    text = value.decode("latin-1")
                    found[meta_key] = f"{found[meta_key]},{text}" if meta_key in found else text
        return self.start(method, path, found, started_at)
