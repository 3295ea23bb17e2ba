"""``ResilienceASGIMiddleware``: the cheapest place to start a deadline or say no.

It runs before Django builds a request: it starts the deadline at arrival (so
the budget counts Django's own set-up time) and answers a spent budget with
504 at once.  When ``ResilienceMiddleware`` also runs, it finds the deadline
in the scope and reuses it, so each request is decided once.

>>> from django.core.asgi import get_asgi_application
>>> from resilience_django.asgi import ResilienceASGIMiddleware
>>> application = ResilienceASGIMiddleware(get_asgi_application())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any

from django.http import HttpResponseBase

from . import metrics, responses
from .deadline import Deadline, _current
from .middleware import SCOPE_ARRIVED, SCOPE_DEADLINE
from .runtime import get_runtime

__all__ = ["ResilienceASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The Django middleware answers at the deadline with the real request at hand
# (route label, replaceable handler); this layer steps in only if it did not.
_GRACE = 0.005


def _meta_getter(scope: Scope) -> Callable[[str], str | None]:
    """A META-style getter (``HTTP_X_TIMEOUT_MS``) over the raw ASGI headers."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        key = "HTTP_" + raw_name.decode("latin-1").upper().replace("-", "_")
        headers[key] = raw_value.decode("latin-1")
    return headers.get


async def send_response(send: Send, response: HttpResponseBase) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    body: bytes = getattr(response, "content", b"")
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ResilienceASGIMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        runtime = get_runtime()
        get_meta = _meta_getter(scope)
        deadline = runtime.deadlines.start(
            scope.get("method", "GET"), scope.get("path", "/"), get_meta, started_at=arrived
        )
        scope[SCOPE_ARRIVED] = arrived
        scope[SCOPE_DEADLINE] = deadline
        shim = SimpleNamespace(META={"HTTP_ACCEPT": get_meta("HTTP_ACCEPT") or ""})
        if deadline is not None and deadline.expired():
            await self._deadline(send, shim, deadline)
            return
        early = await runtime.admit_scope(scope, shim)
        if early is not None:
            await send_response(send, early.response)
            return
        token = _current.set(deadline)
        try:
            if deadline is None:
                await self.app(scope, receive, send)
                return
            await self._run_with_deadline(scope, receive, send, deadline, shim)
        finally:
            _current.reset(token)

    async def _run_with_deadline(
        self, scope: Scope, receive: Receive, send: Send, deadline: Deadline, shim: Any
    ) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + deadline.remaining() + _GRACE):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if not started:
                await self._deadline(send, shim, deadline)

    @staticmethod
    async def _deadline(send: Send, shim: Any, deadline: Deadline) -> None:
        metrics.deadline_exceeded(deadline.route, budget=deadline.budget)
        await send_response(
            send, responses.deadline_exceeded(shim, route=deadline.route, budget=deadline.budget)
        )
