"""``ResilienceASGIMiddleware``: the cheapest place to start a deadline or say no.

It starts the deadline before Django builds a request (so the budget counts Django's own
set-up) and ``ResilienceMiddleware`` reuses it, so each request is decided once.

>>> from django.core.asgi import get_asgi_application
>>> from resilience_django.asgi import ResilienceASGIMiddleware
>>> application = ResilienceASGIMiddleware(get_asgi_application())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from . import clock as _clock
from . import responses
from .asgi_deadline import Message, Receive, Scope, Send, _Shim, run_with_deadline, send_response
from .checks import MIDDLEWARE_PATH
from .deadline import _current
from .middleware import SCOPE_ARRIVED, SCOPE_DEADLINE, cancels_at_deadline
from .routes import normalize_method, scope_path
from .runtime import SCOPE_LIMITS, get_runtime

__all__ = ["ResilienceASGIMiddleware"]

# Loose on purpose: ASGI apps spell scope/receive/send differently in their hints.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class ResilienceASGIMiddleware:
    """Starts each request's deadline before Django runs; see the module docstring.

    ``enforce_deadline``: answer 504 at the deadline here (docs/deadlines.md, "The ASGI
    wrapper alone"); by default only when no ``ResilienceMiddleware`` in async mode does
    it.  ``True`` when the app also serves routes not through Django.
    """

    def __init__(self, app: ASGIApp, *, enforce_deadline: bool | None = None) -> None:
        self.app = app
        # None: decided at the first request, when Django has built its middleware.
        self._django_enforces = None if enforce_deadline is None else not enforce_deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = _clock.source()
        runtime = get_runtime()
        # Servers pass the method as the client sent it ("get"); rules speak upper case.
        method = normalize_method(scope.get("method", "GET"))
        path = scope_path(scope)
        scope[SCOPE_ARRIVED] = arrived
        scope[SCOPE_DEADLINE] = deadline = runtime.deadlines.start_scope(
            method, path, scope.get("headers", ()), arrived
        )
        if deadline is not None and deadline.expired():
            await send_response(send, responses.deadline_response(_Shim(scope), deadline))
            return
        if runtime.limits_before_view:
            limits = runtime.limits
            assert limits is not None  # limits_before_view says so
            # A local store decides inline: no coroutine for the common case.
            result = (
                limits.decide_scope_now(scope, method, path)
                if runtime.arrival_on_loop
                else await limits.decide_scope(scope)
            )
            early = runtime.scope_answer(scope, result, _Shim)
            if early is not None:
                await send_response(send, early)
                return
            if runtime.ratelimit_headers and scope.get(SCOPE_LIMITS) is not None:
                send = _sending_ratelimit_headers(send, scope)
        django_enforces = self._django_enforces
        if django_enforces is None:
            middleware = getattr(settings, "MIDDLEWARE", ())
            enforces = MIDDLEWARE_PATH in middleware and cancels_at_deadline()
            django_enforces = self._django_enforces = enforces
        token = _current.set(deadline)
        try:
            if deadline is None or django_enforces:
                await self.app(scope, receive, send)
            else:
                await run_with_deadline(self.app, scope, receive, send, deadline)
        finally:
            _current.reset(token)


def _sending_ratelimit_headers(send: Send, scope: Scope) -> Send:
    """``send``, adding the arrival decision's ``RateLimit`` headers as bytes when the
    response starts (why: docs/limits.md, "The ASGI fast path"; see ``Runtime.finish``)."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            result = scope.get(SCOPE_LIMITS)
            if result is not None:
                message["headers"] = [*message.get("headers", ()), *result.raw_headers]
        await send(message)

    return send_with_headers
