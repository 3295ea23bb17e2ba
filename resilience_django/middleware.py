"""``ResilienceMiddleware``: the Django adapter around the framework-free cores; sync and
async capable (the mode chosen once in ``__init__``), with no request state on ``self``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from . import clock as _clock
from . import responses
from .breakers.state import CircuitOpen
from .deadline import Deadline, DeadlineExceeded, _current
from .responses import deadline_response
from .runtime import INNER_EXCEPTION, STATE_ATTR, RequestState, Runtime, get_runtime, view_name_of

__all__ = ["ResilienceMiddleware", "cancels_at_deadline"]

# Set by ResilienceASGIMiddleware: its deadline and limit decision are reused here.
SCOPE_ARRIVED = "resilience.arrived"
SCOPE_DEADLINE = "resilience.deadline"

Response = HttpResponseBase
_current_task = asyncio.current_task
_running_loop = asyncio.get_running_loop

# Whether Django built this middleware in async mode in this process: only then does
# it cancel async views at their deadline (else the ASGI wrapper steps in).
_built_async = False


def cancels_at_deadline() -> bool:
    """Whether a ``ResilienceMiddleware`` in async mode answers requests at their deadline."""
    return _built_async


class ResilienceMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        self.process_view: Callable[..., Any]
        if self._is_async:
            global _built_async
            _built_async = True
            markcoroutinefunction(self)
            # A coroutine: Django would adapt a sync process_view with a thread hop.
            self.process_view = self._process_view_async
        else:
            self.process_view = self._process_view_sync

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        # One runtime for the whole request, even if an admin edit swaps it meanwhile.
        request._resilience_runtime = runtime = get_runtime()  # type: ignore[attr-defined]
        deadline = _start(request, runtime)
        if deadline is not None and deadline.expired():
            return deadline_response(request, deadline)
        token = _current.set(deadline)
        try:
            early = runtime.admit_sync(request) if runtime.any_before_view else None
            if early is not None:
                # A later stage refused: give back what earlier stages took.
                return runtime.finish(request, early)
            try:
                response: Response = self.get_response(request)
            except BaseException:
                runtime.release(request, timed_out=False)
                raise
            if (
                deadline is not None
                and getattr(response, "streaming", False)
                and deadline.expired()
                and runtime.bounds_stream(request)
            ):
                # A late sync view (WSGI) streaming a body that may not send a byte: a 504
                # says so, an empty 200 would not.  Released first: close() may raise.
                runtime.release(request, timed_out=True, by_caller=deadline.by_caller)
                response.close()
                return deadline_response(request, deadline)
            return runtime.finish(request, response, deadline)
        finally:
            _current.reset(token)

    async def __acall__(self, request: HttpRequest) -> Response:
        request._resilience_runtime = runtime = get_runtime()  # type: ignore[attr-defined]
        deadline = _start(request, runtime)
        if deadline is not None and deadline.expired():
            return deadline_response(request, deadline)
        # Behind the ASGI wrapper the task already carries the deadline (context copied).
        token = None if _current.get() is deadline else _current.set(deadline)
        try:
            # No coroutine when nothing is decided on arrival, or nothing there can wait.
            if runtime.any_before_view:
                early = (
                    runtime.admit_sync(request)
                    if runtime.arrival_on_loop
                    else await runtime.admit_async(request)
                )
                if early is not None:
                    # A later stage refused: give back what earlier stages took.
                    return runtime.finish(request, early)
            if deadline is None:
                try:
                    response: Response = await self.get_response(request)
                except asyncio.CancelledError:
                    runtime.abandon(request, None)  # the client went away
                    raise
                except BaseException:
                    runtime.release(request, timed_out=False)
                    raise
                return runtime.finish(request, response, None)
            loop = _running_loop()
            task = _current_task(loop)
            assert task is not None  # Django runs every async request in a task
            alarm = deadline.arm(task, loop)
            try:
                response = await self.get_response(request)
            except asyncio.CancelledError:
                # Only our own alarm turns into a 504; another cancellation (client gone) goes on.
                if alarm.fired_for(task):
                    runtime.abandon(request, deadline)
                    return deadline_response(request, deadline)
                runtime.abandon(request, None)
                raise
            except BaseException:
                # Failed: the slot and the breaker trial must not stay taken.
                runtime.release(request, timed_out=False)
                raise
            finally:
                swallowed = alarm.close(task)
            if swallowed:
                # The view caught our cancellation and answered late: the 504 stands
                # (docs/deadlines.md).  Not response.close(): Django closes what it gets.
                runtime.release(request, timed_out=True, by_caller=deadline.by_caller)
                return deadline_response(request, deadline)
            return runtime.finish(request, response, deadline)
        finally:
            if token is not None:
                _current.reset(token)

    # -- hooks Django calls ----------------------------------------------------

    def _process_view_sync(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> Response | None:
        if (runtime := _view_stage(request)) is None:
            return None
        return runtime.admit_sync(request, view_name_of(request), before_view=False)

    async def _process_view_async(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> Response | None:
        if (runtime := _view_stage(request)) is None:
            return None
        return await runtime.admit_async(request, view_name_of(request), before_view=False)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Response | None:
        """Turn our own exceptions escaping a view into their status codes, not a 500."""
        state: RequestState | None = getattr(request, STATE_ATTR, None)
        if state is not None and isinstance(exception, CircuitOpen):
            # The route's verdict now (docs/breakers.md, "Nested breakers"): noted on the
            # request instead, it would turn a 500 a middleware below makes of our 503 into one.
            state.end_breaker(None, by_caller=True)
        return responses.for_exception(request, exception)


def note_inner_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``got_request_exception`` receiver: Django is turning an exception into a 500; if
    it is ours (an open breaker, a deadline), ``Runtime.finish`` answers with its status
    code (503, 504) instead."""
    exception = sys.exc_info()[1]
    if request is not None:  # the latest 500 decides: another's below ours clears ours
        ours = isinstance(exception, DeadlineExceeded | CircuitOpen)
        setattr(request, INNER_EXCEPTION, exception if ours else None)


def _start(request: HttpRequest, runtime: Runtime) -> Deadline | None:
    scope = getattr(request, "scope", None)
    arrived = None
    if scope is not None:
        if SCOPE_DEADLINE in scope:
            # The ASGI wrapper decided (its headers read, and a bad one counted, once).
            existing: Deadline | None = scope[SCOPE_DEADLINE]
            return existing
        arrived = scope.get(SCOPE_ARRIVED)
    return runtime.deadlines.start(
        request.method or "GET",
        request.path_info,
        request.META,
        _clock.source() if arrived is None else arrived,
    )


def _view_stage(request: HttpRequest) -> Runtime | None:
    """The request's runtime if anything is decided at the view (after tightening the
    deadline by view name)."""
    try:
        runtime: Runtime = request._resilience_runtime  # type: ignore[attr-defined]
    except AttributeError:  # called without the middleware's __call__ first
        runtime = get_runtime()
    if runtime.deadlines.needs_view_name:
        method, path = request.method or "GET", request.path_info
        found = runtime.deadlines.view_budget(method, path, view_name_of(request))
        deadline = _current.get()
        if found is not None and deadline is not None:
            deadline.tighten(found[0], route=found[1])
    return runtime if runtime.any_at_view else None
