"""The compiled state the adapters consult on every request.

Built once from the parsed settings (and the admin's rules) and swapped whole
when they change, so a request reads one immutable object and never takes a
lock or queries the database to find its rules.  The limiter stores (local
counters, the Redis connection) outlive a rebuild: changing a rule must not
forget who has used how much.
"""

from __future__ import annotations

import threading
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from .conf import ResilienceSettings, get_settings, on_reload
from .deadline_policy import DeadlinePolicy
from .limiting.decision import Limiter
from .limiting.engine import LimitEngine, LimitResult
from .limiting.local import LocalLimiter
from .limiting.responses import rate_limited_response
from .responses import unavailable
from .shedding.bulkhead import Permit, Shed
from .shedding.shedder import Shedder

__all__ = ["Early", "RequestState", "Runtime", "get_runtime", "reset_runtime"]

# Attribute on the Django request holding what admission took (a permit, a
# limit result), for `finish` to give back and report.
STATE_ATTR = "_resilience_state"
# Scope key under which the ASGI fast path leaves its limit decision.
SCOPE_LIMITS = "resilience.limits"


class Early:
    """A response given without running the view (429, 503)."""

    __slots__ = ("response",)

    def __init__(self, response: HttpResponseBase) -> None:
        self.response = response


class RequestState:
    __slots__ = ("limits", "permit")

    def __init__(self) -> None:
        self.limits: LimitResult | None = None
        self.permit: Permit | None = None


class _Stores:
    """The limiter stores; kept across rebuilds while their settings stay the same."""

    def __init__(self, settings: ResilienceSettings) -> None:
        self.key = (settings.backend, settings.redis_settings, settings.fallback,
                    settings.fallback_latency, settings.local_max_keys)  # fmt: skip
        self.local = LocalLimiter(max_keys=settings.local_max_keys)
        self.distributed: Limiter | None = None
        if settings.backend == "redis" and settings.redis_settings is not None:
            from .limiting.hybrid import build_hybrid_limiter

            self.distributed = build_hybrid_limiter(
                settings.redis,
                fallback_latency=settings.fallback_latency,
                fallback=settings.raw.get("FALLBACK"),
                local=LocalLimiter(max_keys=settings.local_max_keys),
            )

    def matches(self, settings: ResilienceSettings) -> bool:
        return self.key == (settings.backend, settings.redis_settings, settings.fallback,
                            settings.fallback_latency, settings.local_max_keys)  # fmt: skip


class Runtime:
    __slots__ = (
        "deadlines",
        "limits",
        "limits_before_view",
        "ratelimit_headers",
        "settings",
        "shed_before_view",
        "shedder",
        "stores",
    )

    def __init__(self, settings: ResilienceSettings, stores: _Stores) -> None:
        self.settings = settings
        self.stores = stores
        self.deadlines = DeadlinePolicy(settings.deadline)
        rules = settings.limits
        if stores.distributed is not None:
            engine = LimitEngine(
                rules, stores.distributed, local=stores.local,
                trusted_proxies=settings.trusted_proxies,
            )  # fmt: skip
        else:
            engine = LimitEngine(rules, stores.local, trusted_proxies=settings.trusted_proxies)
        self.limits: LimitEngine | None = engine if engine else None
        # Rules keyed by user or a callable need AuthenticationMiddleware, and
        # rules naming a view need the resolved URL: those are decided in
        # process_view, all of the request's rules together (all-or-nothing).
        # The rest are decided on arrival, before any other middleware costs.
        self.limits_before_view = self.limits is not None and not (
            engine.needs_view_name or engine.needs_request
        )
        self.shedder: Shedder | None = Shedder(settings.shedding) if settings.shedding else None
        self.shed_before_view = self.shedder is not None and not self.shedder.needs_view_name
        self.ratelimit_headers = settings.ratelimit_headers

    # -- admission on arrival -------------------------------------------------

    def admit_sync(self, request: HttpRequest) -> Early | None:
        state: RequestState | None = None
        if self.limits_before_view:
            state = RequestState()
            early = self._limits_sync(request, state, None)
            if early is not None:
                return early
        if self.shed_before_view:
            state = state or RequestState()
            early = self._shed_sync(request, state, None)
            if early is not None:
                return early
        if state is not None:
            setattr(request, STATE_ATTR, state)
        return None

    async def admit_async(self, request: HttpRequest) -> Early | None:
        state: RequestState | None = None
        if self.limits_before_view:
            state = RequestState()
            early = await self._limits_async(request, state, None)
            if early is not None:
                return early
        if self.shed_before_view:
            state = state or RequestState()
            early = await self._shed_async(request, state, None)
            if early is not None:
                return early
        if state is not None:
            setattr(request, STATE_ATTR, state)
        return None

    async def admit_scope(self, scope: Any, shim: Any) -> Early | None:
        """The ASGI fast path: decide the limits that need no Django request."""
        if not self.limits_before_view or self.limits is None:
            return None
        result = await self.limits.decide_scope(scope)
        if result is None:
            return None
        if not result.allowed:
            return Early(rate_limited_response(shim, result))
        scope[SCOPE_LIMITS] = result
        return None

    # -- admission once the view is known -----------------------------------------

    def admit_view_sync(self, request: HttpRequest) -> Early | None:
        if self.limits_before_view and self.shed_before_view:
            return None
        state = self._state(request)
        view_name = _view_name(request)
        if self.limits is not None and not self.limits_before_view:
            early = self._limits_sync(request, state, view_name)
            if early is not None:
                return early
        if self.shedder is not None and not self.shed_before_view:
            return self._shed_sync(request, state, view_name)
        return None

    async def admit_view_async(self, request: HttpRequest) -> Early | None:
        if self.limits_before_view and self.shed_before_view:
            return None
        state = self._state(request)
        view_name = _view_name(request)
        if self.limits is not None and not self.limits_before_view:
            early = await self._limits_async(request, state, view_name)
            if early is not None:
                return early
        if self.shedder is not None and not self.shed_before_view:
            return await self._shed_async(request, state, view_name)
        return None

    # -- after the view -------------------------------------------------------------

    def finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is None:
            return response
        if state.permit is not None:
            state.permit.release()
        result = state.limits
        if result is not None and self.ratelimit_headers:
            for name, value in result.headers:
                response[name] = value
        return response

    def release(self, request: HttpRequest) -> None:
        """The view was abandoned at its deadline: give back its concurrency slot."""
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is not None and state.permit is not None:
            state.permit.release()

    def exception_response(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        from .breakers.state import CircuitOpen

        if isinstance(exception, CircuitOpen):
            # A dependency's breaker is open and the view did not handle it:
            # that is "unavailable, retry later", not a server bug.
            return unavailable(
                request, reason="breaker_open", name=exception.name,
                retry_after=exception.retry_after,
            )  # fmt: skip
        return None

    # -- pieces ---------------------------------------------------------------------

    @staticmethod
    def _state(request: HttpRequest) -> RequestState:
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is None:
            state = RequestState()
            setattr(request, STATE_ATTR, state)
        return state

    def _limits_sync(
        self, request: HttpRequest, state: RequestState, view_name: str | None
    ) -> Early | None:
        assert self.limits is not None
        scope = getattr(request, "scope", None)
        result = scope.get(SCOPE_LIMITS) if scope is not None else None
        if result is None:
            result = self.limits.decide(request.method or "GET", request.path_info, request,
                                        view_name)  # fmt: skip
        state.limits = result
        if not result.allowed:
            return Early(rate_limited_response(request, result))
        return None

    async def _limits_async(
        self, request: HttpRequest, state: RequestState, view_name: str | None
    ) -> Early | None:
        assert self.limits is not None
        scope = getattr(request, "scope", None)
        result = scope.get(SCOPE_LIMITS) if scope is not None else None
        if result is None:
            result = await self.limits.adecide(
                request.method or "GET", request.path_info, request, view_name
            )
        state.limits = result
        if not result.allowed:
            return Early(rate_limited_response(request, result))
        return None

    def _shed_sync(
        self, request: HttpRequest, state: RequestState, view_name: str | None
    ) -> Early | None:
        assert self.shedder is not None
        answer = self.shedder.admit_sync(
            request.method or "GET", request.path_info, view_name, header=request.headers.get
        )
        return self._shed_answer(request, state, answer)

    async def _shed_async(
        self, request: HttpRequest, state: RequestState, view_name: str | None
    ) -> Early | None:
        assert self.shedder is not None
        answer = await self.shedder.admit_async(
            request.method or "GET", request.path_info, view_name, header=request.headers.get
        )
        return self._shed_answer(request, state, answer)

    @staticmethod
    def _shed_answer(
        request: HttpRequest, state: RequestState, answer: Permit | Shed | None
    ) -> Early | None:
        if answer is None:
            return None
        if isinstance(answer, Shed):
            return Early(
                unavailable(
                    request, reason="shed", name=answer.reason, retry_after=answer.retry_after
                )
            )
        state.permit = answer
        return None


def _view_name(request: HttpRequest) -> str | None:
    match = request.resolver_match
    return match.view_name if match is not None else None


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    runtime = _runtime
    if runtime is None:
        runtime = _build()
    return runtime


def _build() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            settings = get_settings()
            stores = _previous_stores
            if stores is None or not stores.matches(settings):
                stores = _Stores(settings)
            _remember(stores)
            _runtime = Runtime(settings, stores)
        return _runtime


_previous_stores: _Stores | None = None


def _remember(stores: _Stores) -> None:
    global _previous_stores
    _previous_stores = stores


def reset_runtime() -> None:
    global _runtime
    with _lock:
        _runtime = None


on_reload(reset_runtime)
