"""The compiled state the adapters consult on every request (docs/architecture.md).

Built once from the settings and the admin's rules and swapped whole when they change;
the limiter stores outlive a rebuild, so a rule edit does not forget who used how much.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase

from . import abandoned, routes
from .breakers.phase import Phase
from .breakers.registry import get_breaker
from .breakers.state import Breaker, CircuitOpen
from .conf import ResilienceSettings, get_settings, on_reload
from .deadline import Deadline
from .deadline_policy import DeadlinePolicy
from .limiting.engine import LimitEngine, LimitResult
from .limiting.health import register as register_limiter_health
from .limiting.hybrid import HybridLimiter, build_hybrid_limiter
from .limiting.local import LocalLimiter
from .limiting.rules import LimitRule
from .live import AdminRules, admin_rules, maybe_reload
from .responses import add_headers, for_exception, rate_limited_response, unavailable
from .routes import RouteIndex, RouteMatcher
from .shedding.bulkhead import Permit, Shed
from .shedding.shedder import Shedder
from .streaming import guard_stream
from .switch import limits_enabled

__all__ = [
    "RequestState",
    "Runtime",
    "discard_stores",
    "get_runtime",
    "reset_runtime",
    "view_name_of",
]

# Request attribute holding what admission took, for ``finish`` to give back.
STATE_ATTR = "_resilience_state"
# Our exception Django turned into a 500 below us (middleware.note_inner_exception).
INNER_EXCEPTION = "_resilience_inner_exception"
# Scope key under which the ASGI fast path leaves its limit decision.
SCOPE_LIMITS = "resilience.limits"


class RequestState:
    """What admission took for one request (the defaults on the class: no ``__init__`` to run)."""

    limits: LimitResult | None = None
    permit: Permit | None = None
    breaker: Breaker | None = None
    token: Phase | None = None
    started = 0.0
    refused = False

    def end_breaker(self, failed: bool | None, *, by_caller: bool = False) -> None:
        """The route breaker's verdict on the view (``None``: none, only free its trial);
        ``by_caller``: not the route's fault (the caller's budget ran out, an inner breaker
        refused), a slow call only past ``slow_call``."""
        breaker, token = self.breaker, self.token
        if breaker is None or token is None:
            return
        self.token = None
        if by_caller:  # a success when slow: the breaker counts it as a slow call
            slow = breaker.policy.slow_call
            failed = False if slow is not None and time.monotonic() - self.started >= slow else None
        if failed is None:
            breaker.release(token)
        elif failed:
            breaker.record_failure(token, time.monotonic() - self.started)
        else:
            breaker.record_success(token, time.monotonic() - self.started)


class _Stores:
    """The limiter stores; kept across rebuilds while their settings stay the same."""

    def __init__(self, settings: ResilienceSettings) -> None:
        self.key = self._key(settings)
        self.local = LocalLimiter(max_keys=settings.local_max_keys)
        self.shedder = Shedder()
        self.distributed: HybridLimiter | None = None
        if settings.backend == "redis" and settings.redis_settings is not None:
            # The fallback shares the local store: its keys never collide with local rules'.
            self.distributed = build_hybrid_limiter(
                settings.redis_settings,
                fallback_latency=settings.fallback_latency,
                fallback=settings.fallback,
                local=self.local,
            )
        else:
            register_limiter_health(None)

    @staticmethod
    def _key(s: ResilienceSettings) -> tuple[Any, ...]:
        return (s.backend, s.redis_settings, s.fallback, s.fallback_latency, s.local_max_keys)

    def engine(self, rules: tuple[LimitRule, ...], settings: ResilienceSettings) -> LimitEngine:
        """An engine on these stores; with Redis, local-scope rules still decide locally."""
        trusted, shared = settings.trusted_proxies, self.distributed
        if shared is None:
            return LimitEngine(rules, self.local, trusted_proxies=trusted)
        return LimitEngine(rules, shared, local=self.local, trusted_proxies=trusted)

    def close(self) -> None:
        if self.distributed is not None:
            self.distributed.close()


class Runtime:
    """The compiled rules and stores, and the stages a request goes through."""

    __slots__ = ("any_at_view", "any_before_view", "arrival_on_loop", "breaker_index",
                 "breakers_before_view", "deadlines", "limits", "limits_before_view",
                 "ratelimit_headers", "route_breakers", "settings", "shed_before_view",
                 "shedder", "stores")  # fmt: skip

    def __init__(self, settings: ResilienceSettings, stores: _Stores, admin: AdminRules) -> None:
        self.settings = settings
        self.stores = stores
        # Settings rules first, then the admin's (live drops those named like a setting).
        self.deadlines = DeadlinePolicy(
            replace(settings.deadline, routes=settings.deadline.routes + admin.route_budgets)
        )
        # after_auth rules wait for DRF's authentication: its throttle decides them.
        rules = tuple(r for r in settings.limits + admin.limit_rules if not r.after_auth)
        engine = stores.engine(rules, settings)
        self.limits: LimitEngine | None = engine if engine else None
        # Rules keyed by user or a callable (AuthenticationMiddleware) or naming a view
        # put all the request's rules in process_view (all-or-nothing); else on arrival.
        self.limits_before_view = self.limits is not None and not (
            engine.needs_view_name or engine.needs_request
        )
        # The shedder lives with the stores: a rebuild (an admin edit) must not hand
        # out fresh slots while requests hold the old ones.  Settings rules first.
        shedding = settings.shedding + admin.shedding_rules if limits_enabled() else ()
        stores.shedder.update(shedding)
        self.shedder: Shedder | None = stores.shedder if shedding else None
        self.shed_before_view = self.shedder is not None and not self.shedder.needs_view_name
        self.ratelimit_headers = settings.ratelimit_headers
        # (breaker name, matcher) of the breakers that guard routes, settings' first.
        both = (*settings.breakers.items(), *admin.breaker_policies.items())
        self.route_breakers = tuple((n, p.route) for n, p in both if p.route is not None)
        self.breaker_index: RouteIndex[tuple[str, RouteMatcher]] = RouteIndex(
            (matcher, (name, matcher)) for name, matcher in self.route_breakers
        )
        self.breakers_before_view = bool(self.route_breakers) and not any(
            m.needs_view_name for _, m in self.route_breakers
        )
        self.any_before_view = (
            self.limits_before_view or self.shed_before_view or self.breakers_before_view
        )
        # The arrival stages run inline on the event loop (no coroutines) when none can
        # wait: no bulkhead queue, limits on the local store with non-blocking keys.
        self.arrival_on_loop = not self.shed_before_view and (
            not self.limits_before_view or engine.loop_safe
        )
        self.any_at_view = (
            (self.limits is not None and not self.limits_before_view)
            or (self.shedder is not None and not self.shed_before_view)
            or (bool(self.route_breakers) and not self.breakers_before_view)
        )

    # -- admission ----------------------------------------------------------------

    def scope_answer(
        self, scope: Any, result: LimitResult | None, make_shim: Callable[[Any], Any]
    ) -> HttpResponseBase | None:
        """The ASGI fast path's limit ``result`` (``make_shim(scope)`` stands in for the
        request in a 429); an admitted one is left in the scope for ``admit_*``."""
        global _scope_decides
        if result is None:
            return None
        if not result.allowed:
            return rate_limited_response(make_shim(scope), result)
        _scope_decides = True
        scope[SCOPE_LIMITS] = result
        return None

    # Stages in the documented order: limits (cheapest "no"), slot, route breaker, so a
    # request refused by an earlier stage never holds a slot or a half-open trial.

    def admit_sync(
        self, request: HttpRequest, view_name: str | None = None, *, before_view: bool = True
    ) -> HttpResponseBase | None:
        """On arrival (when ``any_before_view``): the stages needing neither user nor URL;
        in process_view (``before_view=False``, when ``any_at_view``): the others."""
        state, method, path = _state(request), request.method or "GET", request.path_info
        if self.limits is not None and self.limits_before_view is before_view:
            # The ASGI wrapper's decision, if it made one (a LimitResult is always true).
            scope = getattr(request, "scope", None) if _scope_decides else None
            decided: LimitResult | None = scope.get(SCOPE_LIMITS) if scope else None
            result = decided or self.limits.decide(method, path, request, view_name)
            state.limits = result
            if not result.allowed:
                state.refused = True
                return rate_limited_response(request, result)
        answer = None
        if self.shedder is not None and self.shed_before_view is before_view:
            answer = self.shedder.admit_sync(method, path, view_name, header=request.headers.get)
        elif not self.route_breakers or self.breakers_before_view is not before_view:
            return None  # no bulkhead and no route breaker at this stage
        return self._shed_then_breaker(request, state, answer, view_name, before_view)

    async def admit_async(
        self, request: HttpRequest, view_name: str | None = None, *, before_view: bool = True
    ) -> HttpResponseBase | None:
        state, method, path = _state(request), request.method or "GET", request.path_info
        if self.limits is not None and self.limits_before_view is before_view:
            scope = getattr(request, "scope", None) if _scope_decides else None
            decided: LimitResult | None = scope.get(SCOPE_LIMITS) if scope else None
            result = decided or await self.limits.adecide(method, path, request, view_name)
            state.limits = result
            if not result.allowed:
                state.refused = True
                return rate_limited_response(request, result)
        answer = None
        if self.shedder is not None and self.shed_before_view is before_view:
            header = request.headers.get
            answer = await self.shedder.admit_async(method, path, view_name, header=header)
        elif not self.route_breakers or self.breakers_before_view is not before_view:
            return None
        return self._shed_then_breaker(request, state, answer, view_name, before_view)

    def _shed_then_breaker(
        self, request: HttpRequest, state: RequestState, answer: Permit | Shed | None,
        view_name: str | None, before_view: bool,
    ) -> HttpResponseBase | None:  # fmt: skip
        """The bulkhead's answer, then the route breaker: what follows the I/O stages."""
        if isinstance(answer, Shed):
            state.refused = True
            return unavailable(
                request, reason="shed", name=answer.reason, retry_after=answer.retry_after
            )
        state.permit = answer
        if self.route_breakers and self.breakers_before_view is before_view:
            return self._breaker(request, state, view_name)
        return None

    # -- after the view -------------------------------------------------------------

    def finish(
        self, request: HttpRequest, response: HttpResponseBase, deadline: Deadline | None = None
    ) -> HttpResponseBase:
        """The response is ready: give back what admission took and report.  A streamed
        body keeps the slot and runs under ``deadline`` until it ends (docs/deadlines.md)."""
        if response.status_code == 500:
            exception = getattr(request, INNER_EXCEPTION, None)
            if exception is not None:
                response = for_exception(request, exception) or response
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        # Not every HttpResponseBase subclass says (HttpResponse and StreamingHttpResponse do).
        streaming: bool = getattr(response, "streaming", False)
        if state is None:
            if streaming and deadline is not None:
                self._guard_stream(request, response, None, deadline)
            return response
        permit = state.permit
        if permit is not None:
            state.permit = None
            if not streaming or permit.exempt_streams:
                permit.release()
                permit = None
        if state.breaker is not None:
            # No verdict for our own 429/503 (the route did not run) nor a 4xx (any client
            # could close a half-open breaker with a 404); a 504 at the caller's own budget,
            # or an inner breaker's 503 (docs/breakers.md, "Nested breakers"), is slow at most.
            status = response.status_code
            if status == 503:
                by_caller = isinstance(getattr(request, INNER_EXCEPTION, None), CircuitOpen)
            else:
                by_caller = status == 504 and deadline is not None and deadline.by_caller
            failed = None if state.refused or 400 <= status < 500 else status >= 500
            state.end_breaker(failed, by_caller=by_caller)
        result = state.limits
        if result is not None and self.ratelimit_headers:
            # The ASGI wrapper's decision goes out as bytes (``asgi.py``), unless a DRF
            # throttle merged its rules into the result or ``@limit`` took the scope's
            # decision back: then ours replace them, as on every path.
            scope: Any = getattr(request, "scope", None) if _scope_decides else None
            decided = scope.get(SCOPE_LIMITS) if scope else None
            if result is not decided:
                add_headers(response, result.headers)
                if decided is not None:
                    scope[SCOPE_LIMITS] = None
        if streaming:
            self._guard_stream(request, response, permit, deadline)
        return response

    def _guard_stream(
        self, request: HttpRequest, response: HttpResponseBase, permit: Permit | None,
        deadline: Deadline | None,
    ) -> None:  # fmt: skip
        if deadline is not None and not self.bounds_stream(request):
            # Exempt: wrapped all the same, so the body runs with no deadline rather
            # than under the spent one its context (the ASGI wrapper's) still holds.
            guard_stream(response, permit=permit, deadline=None)
        elif permit is not None or deadline is not None:
            guard_stream(response, permit=permit, deadline=deadline)

    def bounds_stream(self, request: HttpRequest) -> bool:
        """Whether the deadline covers a body streamed for this request."""
        return not self.deadlines.exempts_stream(
            request.method or "GET", request.path_info, view_name_of(request)
        )

    def release(self, request: HttpRequest, *, timed_out: bool, by_caller: bool = False) -> None:
        """The view did not answer: free its slot; a timeout counts against the route (not a
        client gone or a failure, ``timed_out`` False); ``by_caller``: see ``end_breaker``."""
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is None:
            return
        if state.permit is not None:
            state.permit.release()
            state.permit = None
        state.end_breaker(True if timed_out else None, by_caller=timed_out and by_caller)

    def abandon(self, request: HttpRequest, deadline: Deadline | None) -> None:
        """The deadline (or, with ``None``, the client going away) cut the view short:
        the route's verdict now, the slot when the work has really stopped."""
        timed_out = deadline is not None
        by_caller = deadline is not None and deadline.by_caller
        match = request.resolver_match
        if match is None or iscoroutinefunction(match.func):
            # An async view's task is unwound by now: nothing of it runs on.
            self.release(request, timed_out=timed_out, by_caller=by_caller)
            return
        # A sync view's thread runs on: its slot (and, client gone, its route breaker's trial,
        # freed with no verdict) stays taken until it ends, so the bulkhead bounds real work.
        permit: Permit | None = None
        trial: Callable[[], None] | None = None
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is not None:
            permit, state.permit = state.permit, None
            if not timed_out and state.breaker is not None and state.token is not None:
                trial, state.token = functools.partial(state.breaker.release, state.token), None
        self.release(request, timed_out=timed_out, by_caller=by_caller)
        abandoned.hold_until_thread_ends(deadline.route if deadline else None, permit, trial)

    # -- pieces ---------------------------------------------------------------------

    def _breaker(
        self, request: HttpRequest, state: RequestState, view_name: str | None
    ) -> HttpResponseBase | None:
        method, path = request.method or "GET", request.path_info
        for name, matcher in self.breaker_index.candidates(path):
            if matcher.matches(method, path, view_name):
                breaker = get_breaker(name)
                try:
                    state.token = breaker.acquire()
                except CircuitOpen as exc:
                    state.refused = True
                    return unavailable(
                        request, reason="breaker_open", name=name, retry_after=exc.retry_after
                    )
                state.breaker = breaker
                state.started = time.monotonic()
                return None
        return None


def _state(request: HttpRequest) -> RequestState:
    state: RequestState | None = getattr(request, STATE_ATTR, None)
    if state is None:
        state = RequestState()
        setattr(request, STATE_ATTR, state)
    return state


_scope_decides = False  # True once the ASGI wrapper left a decision in some scope


def view_name_of(request: HttpRequest) -> str | None:
    """The resolved URL's name (``None`` before URL resolution, or for an unnamed URL)."""
    match = request.resolver_match
    return match.view_name if match is not None else None


_lock = threading.Lock()
_runtime: Runtime | None = None
_previous_stores: _Stores | None = None
_generation = 0  # of the admin rules _runtime was built from (live.maybe_reload)
_monotonic = time.monotonic


def get_runtime() -> Runtime:
    # Admin edits: a float compare per request; the reload runs on a background thread.
    global _generation
    runtime = _runtime  # read once: another thread may reset it
    if (generation := maybe_reload(_monotonic())) != _generation:
        _generation = generation
        reset_runtime()
        runtime = None
    return runtime if runtime is not None else _build()


def _build() -> Runtime:
    global _runtime, _previous_stores
    with _lock:
        if _runtime is None:
            settings = get_settings()
            routes.forced_script_name = getattr(django_settings, "FORCE_SCRIPT_NAME", None) or ""
            stores = _previous_stores
            if stores is None or stores.key != _Stores._key(settings):
                if stores is not None:
                    stores.close()
                stores = _previous_stores = _Stores(settings)
            _runtime = Runtime(settings, stores, admin_rules())
            # Every worker reports its limiter and rejections to the fleet view.
            from .fleet import start_reporting

            start_reporting()
        return _runtime


def reset_runtime() -> None:
    global _runtime
    with _lock:
        _runtime = None


def discard_stores() -> None:
    """Forget the limiter stores too (counts, bulkhead slots), for tests
    (``resilience_django.testing.reset``); an admin edit keeps them."""
    global _runtime, _previous_stores
    with _lock:
        stores, _previous_stores, _runtime = _previous_stores, None, None
    if stores is not None:
        stores.close()


def _script_name_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "FORCE_SCRIPT_NAME":
        reset_runtime()


on_reload(reset_runtime)
setting_changed.connect(_script_name_changed)
