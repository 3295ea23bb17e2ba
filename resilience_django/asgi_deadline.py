"""The ASGI wrapper's own deadline, when no ``ResilienceMiddleware`` runs behind it: answer
at the deadline, never wait for the app (docs/deadlines.md, "The ASGI wrapper alone")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.http import HttpResponseBase

from . import metrics, responses
from .abandoned import leave
from .deadline import Deadline, _current
from .routes import normalize_method, scope_path
from .runtime import get_runtime

__all__ = ["run_with_deadline"]

logger = logging.getLogger("resilience_django.deadline")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# The Django middleware answers at the deadline with the real request at hand
# (route label, replaceable handler); this layer steps in only if it did not.
_GRACE = 0.005


class _Shim:
    """What a response handler gets for a request Django has not built yet."""

    __slots__ = ("META", "method", "path", "path_info", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method = normalize_method(scope.get("method", "GET"))
        self.path = scope.get("path", "/")
        self.path_info = scope_path(scope)
        accept = next((v for k, v in scope.get("headers", ()) if k == b"accept"), b"")
        self.META = {"HTTP_ACCEPT": accept.decode("latin-1"), "REQUEST_METHOD": self.method}


async def send_response(send: Send, response: HttpResponseBase) -> None:
    body: bytes = getattr(response, "content", b"")
    response["Content-Length"] = str(len(body))  # a handler's own is not sent twice
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    headers += [(b"Set-Cookie", c.OutputString().encode()) for c in response.cookies.values()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class _Exchange:
    """The app's ``send`` and ``receive``, which the wrapper can close at the deadline
    (its flags are read and set on the loop thread between awaits: never half-done)."""

    __slots__ = ("_receive", "_send", "_shim", "_woken", "closed", "exempt", "finished",
                 "idle", "receivers", "sending", "started")  # fmt: skip

    def __init__(self, receive: Receive, send: Send, shim: _Shim) -> None:
        self._receive = receive
        self._send = send
        self._shim = shim
        self.exempt = False  # the response started on a route in EXEMPT_STREAMS
        self.started = False  # http.response.start has gone out (or is going)
        self.finished = False  # the last body message has gone out (or is going)
        self.sending = False  # a message of the app's is on its way
        self.closed = False  # the deadline passed: the app's messages go nowhere
        # Set by the wrapper that cut the body while a message was on its way: the
        # message's end (sent, failed or cancelled) resolves it.
        self.idle: asyncio.Future[None] | None = None
        # Tasks waiting in receive(), with their cancel count on entry.
        self.receivers: dict[asyncio.Task[Any], int] = {}
        self._woken: set[asyncio.Task[Any]] = set()

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        kind = message.get("type")
        if kind == "http.response.start":
            self.started = True
            # Before Django resolves the URL only path routes can match.
            shim = self._shim
            if get_runtime().deadlines.exempts_stream(shim.method, shim.path_info, None):
                # The body of an exempt route sees no deadline: set in the app's own
                # context, as this runs in the app's task.
                self.exempt = True
                _current.set(None)
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        self.sending = True
        try:
            await self._send(message)
        finally:
            self.sending = False
            idle = self.idle
            if idle is not None and not idle.done():
                idle.set_result(None)  # the wrapper ends the body now

    async def receive(self) -> Message:
        if self.closed:
            return {"type": "http.disconnect"}
        task = asyncio.current_task()
        assert task is not None
        self.receivers[task] = task.cancelling()
        try:
            return await self._receive()
        except asyncio.CancelledError:
            # Our wake-up, and only it: the app hears that the client is gone.
            if task in self._woken and task.uncancel() <= self.receivers[task]:
                return {"type": "http.disconnect"}
            raise
        finally:
            self.receivers.pop(task, None)
            self._woken.discard(task)

    def wake_receivers(self) -> bool:
        """Make every pending ``receive()`` return ``http.disconnect``; False if none waits."""
        for task in self.receivers:
            self._woken.add(task)
            task.cancel()
        return bool(self.receivers)


async def run_with_deadline(
    app: App, scope: Scope, receive: Receive, send: Send, deadline: Deadline
) -> None:
    """Run ``app``; a little past ``deadline`` answer 504 or end the streamed body, then
    leave the app to finish in the background."""
    shim = _Shim(scope)
    exchange = _Exchange(receive, send, shim)
    # ensure_future: an ASGI app may return any awaitable, not only a coroutine.
    task: asyncio.Future[None] = asyncio.ensure_future(app(scope, exchange.receive, exchange.send))
    # An alarm, not a timeout: a budget the view tightens (@deadline) moves it.
    me = asyncio.current_task()
    assert me is not None
    alarm = deadline.arm(me, asyncio.get_running_loop(), _GRACE)
    try:
        await asyncio.wait((task,))
    except asyncio.CancelledError:
        if not alarm.fired_for(me):
            # The server cancelled the request: the app goes with it.
            task.cancel()
            leave(task, route=None)
            raise
    finally:
        alarm.close(me)
    if task.done():
        task.result()  # the app's own outcome, exception included
        return
    if exchange.finished or exchange.exempt:
        # The client has its whole answer, or the body is an exempt long-lived stream.
        await task
        return
    exchange.closed = True
    if not exchange.started:
        # Django logs its own 5xx; here Django never sees this one, so say it once,
        # escaped as Django escapes its request logs: a %0A in the path forges no line.
        escaped = [s.encode("unicode_escape").decode("ascii") for s in (shim.method, shim.path)]
        logger.warning(
            "Gateway Timeout: %s %s (route %s, budget %.3fs): answered 504 at the "
            "deadline; the app goes on in the background until it stops",
            *escaped, deadline.route, deadline.budget,
        )  # fmt: skip
        await send_response(send, responses.deadline_response(shim, deadline))
    else:
        metrics.deadline_exceeded(deadline.route, budget=deadline.budget)
        if exchange.sending:
            # A chunk is on its way (a slow client holds the server's send): the
            # body can end only after it, and the server must not see the app
            # return before then, or it drops the connection mid-response.
            exchange.idle = idle = asyncio.get_running_loop().create_future()
            try:
                await idle
            except asyncio.CancelledError:
                task.cancel()
                leave(task, route=None)
                raise
        exchange.finished = True
        try:
            await send(_END)
        except Exception:
            # Client gone, or a Content-Length not reached: the server closes the connection.
            logger.debug("could not end a body cut at its deadline", exc_info=True)
    if not exchange.wake_receivers():
        task.cancel()
    leave(task, route=deadline.route)
