"""``breaker("pricing")``: a decorator and a context manager, sync and async (docs/breakers.md)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction

from .registry import get_breaker
from .state import Breaker, CircuitOpen, Phase

__all__ = ["BreakerGuard", "CircuitOpen", "breaker"]

P = ParamSpec("P")
R = TypeVar("R")
# A call's token and start time (None: not timed).
Admitted = tuple[Phase, float | None]


class BreakerGuard:
    """Guard calls to a dependency with the breaker called ``name``.

    >>> @breaker("pricing", fallback=lambda sku: None)
    ... def price(sku): ...

    ``fallback`` is called with the same arguments instead of the function while
    the circuit is open; ``failure_result(result) -> bool`` marks results that
    count as failures (for example an HTTP response with a 5xx status), instead of
    the policy's ``failure_result``.
    """

    __slots__ = ("_breaker", "_calls", "failure_result", "fallback", "name")

    def __init__(
        self, name: str, fallback: Callable[..., Any] | None = None, *,
        failure_result: Callable[[Any], bool] | None = None,
    ) -> None:  # fmt: skip
        self.name, self.fallback, self.failure_result = name, fallback, failure_result
        # Resolved on first use: settings are not read at decoration (import) time.
        self._breaker: Breaker | None = None
        # The blocks in progress, per thread / per task.
        self._calls: ContextVar[tuple[Admitted, ...]] = ContextVar(f"breaker:{name}", default=())

    @property
    def breaker(self) -> Breaker:
        b = self._breaker
        if b is None:
            b = self._breaker = get_breaker(self.name)
        return b

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        guard, fallback, own_check = self, self.fallback, self.failure_result
        # The wrappers differ only in calling or awaiting.  asgiref's test, not inspect's:
        # it also knows functions marked as coroutine functions (an async class-based
        # view's ``as_view()``), whose call only makes the coroutine.
        if iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                b = guard._breaker or guard.breaker
                admitted = _admit(b, fallback)
                if admitted is None:
                    value = cast(Callable[..., Any], fallback)(*args, **kwargs)
                    return await value if inspect.isawaitable(value) else value
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    _failed(b, admitted, exc)
                    raise
                return _done(b, admitted, result, own_check or b._result_check)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            b = guard._breaker or guard.breaker
            admitted = _admit(b, fallback)
            if admitted is None:
                return cast(Callable[..., Any], fallback)(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _failed(b, admitted, exc)
                raise
            return _done(b, admitted, result, own_check or b._result_check)

        return wrapper

    def __enter__(self) -> BreakerGuard:
        b = self.breaker
        token = b.acquire()
        self._calls.set((*self._calls.get(), (token, b._clock())))
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        stack = self._calls.get()
        self._calls.set(stack[:-1])
        if exc is None:
            _done(self.breaker, stack[-1], None, None)
        else:
            _failed(self.breaker, stack[-1], exc)

    async def __aenter__(self) -> BreakerGuard:
        return self.__enter__()

    async def __aexit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        self.__exit__(_type, exc, _tb)


def _admit(b: Breaker, fallback: object) -> Admitted | None:
    """Admit a call, or ``None`` to run the fallback; ``CircuitOpen`` if there is none."""
    p = b._phase
    if not p.free:  # only open / half-open / forced states take the slow path
        try:
            p = b._acquire_slow(p)
        except CircuitOpen:
            if fallback is None:
                raise
            return None
    # Time the call only when slowness matters: one clock read saved per call.
    return p, (b._clock() if b._slow is not None else None)


def _failed(b: Breaker, admitted: Admitted, exc: BaseException) -> None:
    now = b._clock()
    token, started = admitted
    b._failed(token, now, None if started is None else now - started, exc)


def _done(b: Breaker, admitted: Admitted, result: R, check: Callable[[Any], bool] | None) -> R:
    """Report a call that returned ``result`` (a failure if a result check says so)."""
    now = b._clock()
    token, started = admitted
    duration = None if started is None else now - started
    try:
        failed = check is not None and check(result)
    except BaseException:
        # A predicate that raises gives no verdict, but the call must still
        # report: a half-open trial that never does holds its slot.
        b.release(token)
        raise
    if failed:
        b._failed(token, now, duration, None)
    else:
        b._ok(token, now, duration)
    return result


# ``breaker("pricing")`` builds the guard itself: the decorator is the class.
breaker = BreakerGuard
