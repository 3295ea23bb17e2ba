"""``@retry``: full-jitter retries that respect deadlines, budgets, breakers (docs/retries.md)."""

from __future__ import annotations

import asyncio
import copy
import functools
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from asgiref.sync import iscoroutinefunction

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

RetryOn = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None
)
_NEVER_RETRY = (deadline.DeadlineExceeded, LocallyThrottled)
_OPEN_STATES = frozenset({"open", "forced_open"})


class RetryPolicy:
    """Retry a sync or async callable: ``@retry(attempts=3, backoff="100ms", max_backoff="2s")``;
    ``policy.call(fn, *a)``, ``await policy.acall(fn, *a)`` run one call (docs/retries.md).

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

    __slots__ = (
        "_budget", "_throttle", "_throttle_per_target", "async_sleep", "attempts", "backoff",
        "breaker", "budget_ratio", "max_backoff", "random", "retry_on", "retry_on_result", "sleep",
        "target", "wall",
    )  # fmt: skip

    def __init__(
        self,
        attempts: int = 3,
        backoff: str | float = "100ms",
        max_backoff: str | float = "2s",
        budget: float | RetryBudget | None = 0.2,
        retry_on: RetryOn = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        target: str | None = None,
        *,
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
        if isinstance(retry_on, type | tuple):  # a type is callable: as a predicate, always true
            classes = retry_on
            self.retry_on: Callable[[BaseException], bool] = lambda e: isinstance(e, classes)
        else:
            self.retry_on = retry_on or default_retry_on
        self.retry_on_result = retry_on_result or default_retry_on_result
        self.target, self.breaker, self.wall = target, breaker, wall
        self.sleep, self.async_sleep, self.random = sleep, async_sleep, random
        # Per target, shared by every call site; a decorator's target is its function's name.
        self._budget = budget if isinstance(budget, RetryBudget) else None
        self.budget_ratio = None if isinstance(budget, RetryBudget | None) else float(budget)
        self._throttle: AdaptiveThrottle | bool = throttle
        self._throttle_per_target = throttle is True

    def for_target(self, target: str) -> RetryPolicy:
        """This policy with per-target state (budget, throttle) bound to ``target``."""
        if self.target is not None:
            return self
        bound = copy.copy(self)
        bound.target = target
        # Not what this policy found for its own target ("default"): the target's own.
        if self.budget_ratio is not None:
            bound._budget = None
        if self._throttle_per_target:
            bound._throttle = True
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
        if isinstance(b, str):
            from ..breakers.registry import get_breaker  # needed only for a breaker by name

            b = self.breaker = get_breaker(b)
        return getattr(b, "state", None) in _OPEN_STATES

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` under this policy (sync)."""
        run = _Run(self)
        while True:
            if run.throttle is not None:  # it may refuse the attempt: LocallyThrottled
                run.throttle.check()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                if (delay := run.after(exc, True)) is None:
                    raise  # the last outcome stands, unchanged
            else:
                if (delay := run.after(result, False)) is None:
                    return result
            self.sleep(delay)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` under this policy (async); the same decisions as ``call``."""
        run = _Run(self)
        while True:
            if run.throttle is not None:
                run.throttle.check()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                if (delay := run.after(exc, True)) is None:
                    raise
            else:
                if (delay := run.after(result, False)) is None:
                    return result
            await self.async_sleep(delay)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        policy = self.for_target(f"{getattr(fn, '__module__', None) or '?'}.{name}")
        if iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await policy.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return policy.call(fn, *args, **kwargs)

        return sync_wrapper


class _Run:
    """One call under a policy: its budget, throttle and retries so far, and every decision."""

    __slots__ = ("budget", "policy", "retry", "throttle")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.budget, self.throttle = policy._resolve()
        if self.budget is not None:
            self.budget.deposit()
        self.retry = 0

    def after(self, outcome: object, failed: bool) -> float | None:
        """After an attempt: the seconds to sleep before the next, or ``None`` to stop."""
        p = self.policy
        if failed:
            assert isinstance(outcome, BaseException)
            never = isinstance(outcome, _NEVER_RETRY) or is_circuit_open(outcome)
            retryable = not never and isinstance(outcome, Exception) and p.retry_on(outcome)
        else:
            retryable = p.retry_on_result(outcome)
        if self.throttle is not None:
            self.throttle.record(accepted=not retryable)
        if not retryable or self.retry + 1 >= p.attempts or p._breaker_open():
            return None
        delay = full_jitter(self.retry, p.backoff, p.max_backoff, p.random)
        hinted = retry_after_of(outcome, wall=p.wall)
        if hinted is not None:
            if hinted > p.max_backoff:
                return None  # the server asks for longer than we are willing to wait
            delay = max(delay, hinted)
        left = deadline.remaining()
        if left is not None and delay >= left:
            return None  # waking after the deadline would only waste the retry
        if self.budget is not None and not self.budget.try_withdraw():
            return None
        self.retry += 1
        return delay


retry = RetryPolicy  # ``@retry(...)`` builds the policy itself
