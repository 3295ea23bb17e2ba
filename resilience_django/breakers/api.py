"""``breaker("pricing")``: a decorator and a context manager, sync and async.

>>> from resilience_django.breakers.api import breaker
>>> @breaker("pricing", fallback=lambda sku: None)
... def price(sku): ...

``with breaker("pricing"):`` and ``async with breaker("pricing"):`` guard a
block; when the circuit is open they raise :class:`CircuitOpen` (a fallback
can only stand in for a whole function, so it applies to the decorator).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from .registry import get_breaker
from .state import Breaker, CircuitOpen, Phase

__all__ = ["BreakerGuard", "CircuitOpen", "breaker"]

P = ParamSpec("P")
R = TypeVar("R")


class BreakerGuard:
    """What :func:`breaker` returns; see the module docstring."""

    __slots__ = ("_breaker", "_calls", "failure_result", "fallback", "name")

    def __init__(
        self,
        name: str,
        fallback: Callable[..., Any] | None = None,
        failure_result: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.fallback = fallback
        self.failure_result = failure_result
        # Resolved on first use, not at decoration (import) time: settings are
        # not read at import time.
        self._breaker: Breaker | None = None
        # (token, started) of the blocks in progress, per thread / per task.
        self._calls: ContextVar[tuple[tuple[Phase, float], ...]] = ContextVar(
            f"breaker:{name}", default=()
        )

    @property
    def breaker(self) -> Breaker:
        b = self._breaker
        if b is None:
            b = self._breaker = get_breaker(self.name)
        return b

    # -- decorator ---------------------------------------------------------------

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):
            return self._wrap_async(cast(Callable[P, Awaitable[Any]], fn))
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        guard = self
        fallback = self.fallback
        own_check = self.failure_result

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            b = guard._breaker or guard.breaker
            p = b._phase
            if not p.free:  # only open / half-open / forced states take the slow path
                try:
                    p = b._acquire_slow(p)
                except CircuitOpen:
                    if fallback is None:
                        raise
                    return cast(R, fallback(*args, **kwargs))
            clock = b._clock
            # Time the call only when slowness matters: one clock read saved per call.
            timed = b._slow is not None
            started = clock() if timed else 0.0
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                now = clock()
                b._failed(p, now, now - started if timed else None, exc)
                raise
            now = clock()
            check = own_check or b._result_check
            if check is not None and check(result):
                b._failed(p, now, now - started if timed else None, None)
            else:
                b._ok(p, now, now - started if timed else None)
            return result

        return wrapper

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        guard = self
        fallback = self.fallback
        own_check = self.failure_result

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            b = guard._breaker or guard.breaker
            p = b._phase
            if not p.free:
                try:
                    p = b._acquire_slow(p)
                except CircuitOpen:
                    if fallback is None:
                        raise
                    value = fallback(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
                    return cast(R, value)
            clock = b._clock
            timed = b._slow is not None
            started = clock() if timed else 0.0
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                now = clock()
                b._failed(p, now, now - started if timed else None, exc)
                raise
            now = clock()
            check = own_check or b._result_check
            if check is not None and check(result):
                b._failed(p, now, now - started if timed else None, None)
            else:
                b._ok(p, now, now - started if timed else None)
            return result

        return wrapper

    # -- context manager -----------------------------------------------------------

    def __enter__(self) -> BreakerGuard:
        b = self.breaker
        token = b.acquire()
        self._calls.set((*self._calls.get(), (token, b._clock())))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._calls.get()
        token, started = stack[-1]
        self._calls.set(stack[:-1])
        b = self.breaker
        now = b._clock()
        if exc is None:
            b._ok(token, now, now - started)
        else:
            b._failed(token, now, now - started, exc)

    async def __aenter__(self) -> BreakerGuard:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def breaker(
    name: str,
    fallback: Callable[..., Any] | None = None,
    *,
    failure_result: Callable[[Any], bool] | None = None,
) -> BreakerGuard:
    """Guard calls to a dependency with the breaker called ``name``.

    ``fallback`` is called with the same arguments instead of the function while
    the circuit is open; ``failure_result(result) -> bool`` marks results that
    count as failures (for example an HTTP response with a 5xx status), on top of
    the policy's ``failure_result``.
    """
    return BreakerGuard(name, fallback, failure_result)
