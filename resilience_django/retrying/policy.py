"""``@retry``: retries with full-jitter backoff that respect deadlines, budgets and breakers.

A retry happens only when all of these agree:

* the outcome is retryable: an exception in ``retry_on`` (by default network
  errors and HTTP errors carrying a 429/502/503/504 answer), or a result for
  which ``retry_on_result`` says so (by default an HTTP answer with one of
  those statuses);
* it is never one of ours that means "stop": ``DeadlineExceeded``, an open
  circuit (``CircuitOpen``, recognised by its ``retry_after``), a local throttle;
* attempts are left, the target's retry budget has a retry to give, and the
  named ``breaker`` (if any) is not open;
* the sleep, ``max(full jitter, Retry-After)``, ends before the request's
  deadline, and a ``Retry-After`` is no longer than ``max_backoff``.

Otherwise the last outcome stands: its exception is raised or its result
returned, unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from .. import deadline
from ..units import parse_duration
from .backoff import (
    default_retry_on,
    default_retry_on_result,
    full_jitter,
    is_circuit_open,
    retry_after_of,
)
from .budget import RetryBudget, budget_for
from .throttle import AdaptiveThrottle, LocallyThrottled, throttle_for

__all__ = ["RetryPolicy", "default_retry_on", "default_retry_on_result", "retry"]

P = ParamSpec("P")
R = TypeVar("R")

_NEVER_RETRY = (deadline.DeadlineExceeded, LocallyThrottled)
_OPEN_STATES = frozenset({"open", "forced_open"})


class RetryPolicy:
    """The retry decision and loop; ``retry(...)`` builds one, transports may use it directly.

    ``policy(fn)`` decorates (sync or async), ``policy.call(fn, *a)`` and
    ``await policy.acall(fn, *a)`` run one call under the policy.
    """

    __slots__ = (
        "_budget",
        "_throttle",
        "async_sleep",
        "attempts",
        "backoff",
        "breaker",
        "budget_ratio",
        "max_backoff",
        "random",
        "retry_on",
        "retry_on_result",
        "sleep",
        "target",
        "wall",
    )

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: str | float = "100ms",
        max_backoff: str | float = "2s",
        budget: float | RetryBudget | None = 0.2,
        retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        target: str | None = None,
        breaker: str | Any | None = None,
        throttle: bool | AdaptiveThrottle = False,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.backoff = parse_duration(backoff)
        self.max_backoff = parse_duration(max_backoff)
        if isinstance(retry_on, tuple):
            classes = retry_on
            self.retry_on: Callable[[BaseException], bool] = lambda e: isinstance(e, classes)
        else:
            self.retry_on = retry_on or default_retry_on
        self.retry_on_result = retry_on_result or default_retry_on_result
        self.target = target
        self.breaker = breaker
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.random = random
        self.wall = wall
        # Budgets and throttles are per target, shared by every call site; a
        # decorator without a target gets its function's name when applied.
        self.budget_ratio: float | None = None
        self._budget: RetryBudget | None = None
        if isinstance(budget, RetryBudget):
            self._budget = budget
        elif budget is not None:
            self.budget_ratio = float(budget)
        self._throttle: AdaptiveThrottle | bool = throttle

    # --- wiring -------------------------------------------------------------

    def for_target(self, target: str) -> RetryPolicy:
        """This policy with per-target state (budget, throttle) bound to ``target``."""
        if self.target is not None:
            return self
        bound = object.__new__(RetryPolicy)
        for name in RetryPolicy.__slots__:
            setattr(bound, name, getattr(self, name))
        bound.target = target
        return bound

    def _resolve(self) -> tuple[RetryBudget | None, AdaptiveThrottle | None]:
        target = self.target or "default"
        if self._budget is None and self.budget_ratio is not None:
            self._budget = budget_for(target, self.budget_ratio)
        if self._throttle is True:
            self._throttle = throttle_for(target)
        throttle = self._throttle if isinstance(self._throttle, AdaptiveThrottle) else None
        return self._budget, throttle

    def _breaker_open(self) -> bool:
        b = self.breaker
        if b is None:
            return False
        if isinstance(b, str):
            from ..breakers.registry import get_breaker  # needed only for a breaker by name

            b = self.breaker = get_breaker(b)
        return getattr(b, "state", None) in _OPEN_STATES

    # --- the decision -------------------------------------------------------

    def _retryable(self, outcome: object, failed: bool) -> bool:
        if failed:
            assert isinstance(outcome, BaseException)
            if isinstance(outcome, _NEVER_RETRY) or is_circuit_open(outcome):
                return False
            return isinstance(outcome, Exception) and self.retry_on(outcome)
        return self.retry_on_result(outcome)

    def _delay(self, retry: int, outcome: object, budget: RetryBudget | None) -> float | None:
        """Seconds to sleep before retry number ``retry``, or ``None`` to stop."""
        if retry + 1 >= self.attempts or self._breaker_open():
            return None
        delay = full_jitter(retry, self.backoff, self.max_backoff, self.random)
        hinted = retry_after_of(outcome, wall=self.wall)
        if hinted is not None:
            if hinted > self.max_backoff:
                return None  # the server asks for longer than we are willing to wait
            delay = max(delay, hinted)
        left = deadline.remaining()
        if left is not None and delay >= left:
            return None  # waking after the deadline would only waste the retry
        if budget is not None and not budget.try_withdraw():
            return None
        return delay

    def _record(self, throttle: AdaptiveThrottle | None, outcome: object, failed: bool) -> None:
        if throttle is not None:
            throttle.record(accepted=not self._retryable(outcome, failed))

    # --- the loops ----------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` under this policy (sync)."""
        budget, throttle = self._resolve()
        if budget is not None:
            budget.deposit()
        retry = 0
        while True:
            if throttle is not None:
                throttle.check()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._record(throttle, exc, True)
                if not self._retryable(exc, True):
                    raise
                delay = self._delay(retry, exc, budget)
                if delay is None:
                    raise
            else:
                self._record(throttle, result, False)
                if not self._retryable(result, False):
                    return result
                delay = self._delay(retry, result, budget)
                if delay is None:
                    return result
            self.sleep(delay)
            retry += 1

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` under this policy (async); the same decisions as ``call``."""
        budget, throttle = self._resolve()
        if budget is not None:
            budget.deposit()
        retry = 0
        while True:
            if throttle is not None:
                throttle.check()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._record(throttle, exc, True)
                if not self._retryable(exc, True):
                    raise
                delay = self._delay(retry, exc, budget)
                if delay is None:
                    raise
            else:
                self._record(throttle, result, False)
                if not self._retryable(result, False):
                    return result
                delay = self._delay(retry, result, budget)
                if delay is None:
                    return result
            await self.async_sleep(delay)
            retry += 1

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        policy = self.for_target(f"{getattr(fn, '__module__', None) or '?'}.{name}")
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await policy.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return policy.call(fn, *args, **kwargs)

        return sync_wrapper


def retry(
    attempts: int = 3,
    backoff: str | float = "100ms",
    max_backoff: str | float = "2s",
    budget: float | RetryBudget | None = 0.2,
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None = None,
    retry_on_result: Callable[[Any], bool] | None = None,
    target: str | None = None,
    *,
    breaker: str | Any | None = None,
    throttle: bool | AdaptiveThrottle = False,
    sleep: Callable[[float], None] = time.sleep,
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    random: Callable[[], float] = _random.random,
) -> RetryPolicy:
    """Retry a sync or async callable: ``@retry(attempts=3, backoff="100ms", max_backoff="2s")``.

    ``budget`` is the share of calls that may be retried (per ``target``,
    default the function's dotted name), or a ``RetryBudget``, or ``None``
    for no budget.  ``breaker`` names a breaker whose open state stops
    retries; ``throttle=True`` adds client-side adaptive throttling for the
    target.  ``sleep``/``async_sleep``/``random`` are for tests.

    >>> attempts = []
    >>> @retry(attempts=3, backoff=0, budget=None)
    ... def flaky():
    ...     attempts.append(1)
    ...     if len(attempts) < 3:
    ...         raise ConnectionError("reset")
    ...     return "ok"
    >>> flaky(), len(attempts)
    ('ok', 3)
    """
    return RetryPolicy(
        attempts=attempts,
        backoff=backoff,
        max_backoff=max_backoff,
        budget=budget,
        retry_on=retry_on,
        retry_on_result=retry_on_result,
        target=target,
        breaker=breaker,
        throttle=throttle,
        sleep=sleep,
        async_sleep=async_sleep,
        random=random,
    )
