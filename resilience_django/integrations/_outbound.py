"""Deadline → retry → breaker → bulkhead → call, for every outbound transport (docs/retries.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypedDict, TypeVar

from ..breakers.phase import Phase
from ..breakers.registry import get_breaker
from ..breakers.state import Breaker
from ..conf import get_settings
from ..deadline import DeadlineExceeded, _current, remaining
from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead, Permit, Shed

# Methods a transport retries by default: repeating them cannot duplicate an effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class _Answer(Protocol):
    status_code: int  # 5xx: a failure for the breaker

    def close(self) -> None: ...


class _AsyncAnswer(_Answer, Protocol):
    async def aclose(self) -> None: ...


T = TypeVar("T", bound=_Answer)
A = TypeVar("A", bound=_AsyncAnswer)
# (the client's timeout exception, the timeout phase it is about, ours in its place)
Kinds = tuple[tuple[type[BaseException], str, Callable[..., BaseException]], ...]


def outbound_budget(margin: float | None = None) -> tuple[float, int] | None:
    """``(seconds left, ms to announce)``, ``None`` outside a deadline; ``DeadlineExceeded`` when
    nothing is left."""
    deadline = _current.get()
    if deadline is None:
        return None
    left = deadline.remaining()
    if margin is None:
        margin = get_settings().deadline.outbound_margin
    announce = int((left - margin) * 1000)
    if left <= 0 or announce <= 0:
        raise DeadlineExceeded(
            f"deadline of {deadline.budget:.3f}s for {deadline.route} spent before an outbound call"
        )
    return left, announce


def cut_short_message(exc: BaseException | str) -> str:
    deadline = _current.get()
    where = "" if deadline is None else f" of {deadline.budget:.3f}s for {deadline.route}"
    what = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return f"the request's deadline{where} cut the call short ({what})"


class CutShort(AbstractContextManager["CutShort"]):
    """Raises ours (a ``DeadlineExceeded``: no breaker verdict, a 504) in place of a client's
    timeout when the budget set the timeout that fired."""

    __slots__ = ("kinds", "phases", "request")

    def __init__(self, kinds: Kinds, phases: frozenset[str], request: Any) -> None:
        self.kinds, self.phases, self.request = kinds, phases, request

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or not self.phases or isinstance(exc, DeadlineExceeded):
            return  # (already ours: one transport wrapping another)
        for theirs, phase, ours in self.kinds:
            if isinstance(exc, theirs):
                if phase in self.phases:
                    raise ours(cut_short_message(exc), request=self.request) from exc
                return


def bound(request: Any, timeouts: dict[str, Any], kinds: Kinds, margin: float | None) -> CutShort:
    """Caps ``timeouts`` (phase → seconds or ``None``) in place at the budget, sends
    ``X-Timeout-Ms``; the ``CutShort`` of the phases the budget now sets."""
    budget = outbound_budget(margin)
    if budget is None:
        return CutShort(kinds, frozenset(), request)
    left, announce = budget
    request.headers["X-Timeout-Ms"] = str(announce)
    cut = frozenset(p for p, t in timeouts.items() if t is None or left < t)
    timeouts.update(dict.fromkeys(cut, left))
    return CutShort(kinds, cut, request)


class Admitted(AbstractContextManager["Admitted"]):
    """A call the breaker (if any) admitted; ``verdict`` tells the breaker how it ended."""

    __slots__ = ("admitted", "started")

    def __init__(self, breaker: str | None) -> None:
        self.admitted: tuple[Breaker, Phase] | None = None
        if breaker is not None:
            found = get_breaker(breaker)
            self.admitted = found, found.acquire()  # raises CircuitOpen without calling
        self.started = time.monotonic()

    def verdict(self, failed: bool | None, exc: BaseException | None = None) -> None:
        """``None``: no word on the dependency (the call never reached it, or was cut short)."""
        if self.admitted is None:
            return
        breaker, token = self.admitted
        if failed is None:
            breaker.release(token)
        elif failed:
            breaker.record_failure(token, time.monotonic() - self.started, exc=exc)
        else:
            breaker.record_success(token, time.monotonic() - self.started)


class _Attempt(Admitted):
    """One attempt: its breaker token and bulkhead slot."""

    permit: Permit | None = None

    def __init__(self, breaker: str | None, bulkhead: Bulkhead | None) -> None:
        super().__init__(breaker)
        self.bulkhead = bulkhead

    def admit(self, answer: Permit | Shed) -> None:
        if isinstance(answer, Shed):
            assert self.bulkhead is not None
            raise BulkheadFull(self.bulkhead.name, answer.retry_after)
        self.permit = answer

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            # Refused or interrupted by the bulkhead, it never ran: its breaker token goes back.
            ran = self.bulkhead is None or self.permit is not None
            self.verdict(True if ran else None, exc)  # the policy may judge exc no failure
        if self.permit is not None:
            self.permit.release()

    def judge(self, result: T) -> T:
        self.verdict(result.status_code >= 500)
        return result


class OutboundGuard:
    """Retry, breaker and bulkhead around one outbound HTTP call."""

    __slots__ = ("_by_host", "breaker", "bulkhead", "retry", "retry_methods")

    def __init__(
        self,
        *,
        breaker: str | None = None,
        bulkhead: Bulkhead | None = None,
        retry: RetryPolicy | None = None,
        retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self.breaker, self.bulkhead = breaker, bulkhead
        # Retry budgets per dependency (docs/retries.md): the breaker's name, else each host.
        if retry is not None and retry.target is None and breaker is not None:
            retry = retry.for_target(breaker)
        self.retry = retry
        self.retry_methods = frozenset(m.upper() for m in retry_methods)
        self._by_host: dict[str, RetryPolicy] = {}

    def _retry_for(self, method: str, host: str) -> RetryPolicy | None:
        policy = self.retry
        if policy is None or method not in self.retry_methods:
            return None
        target = self._by_host.get(host)
        if target is None:
            if len(self._by_host) >= 256:  # bounded: hosts come from callers' URLs
                self._by_host.clear()
            target = self._by_host[host] = policy.for_target(host)
        return target

    # A body that is not ``replayable`` (a generator, a file) is spent by the first attempt.
    # A retried answer never reaches the caller: closed unread (its body may be endless) before
    # the next attempt, which may need its connection (a pool of one), or on an error.
    def call(self, method: str, host: str, attempt: Callable[[], T], replayable: bool) -> T:
        policy = self._retry_for(method, host) if replayable else None
        dropped: list[T] = []  # the last attempt's answer
        try:
            if policy is None:
                return self._once(attempt, dropped)
            return policy.call(self._once, attempt, dropped)
        except BaseException:
            for answer in dropped:
                answer.close()
            raise

    async def acall(
        self, method: str, host: str, attempt: Callable[[], Awaitable[A]], replayable: bool
    ) -> A:
        policy = self._retry_for(method, host) if replayable else None
        dropped: list[A] = []
        try:
            if policy is None:
                return await self._aonce(attempt, dropped)
            return await policy.acall(self._aonce, attempt, dropped)
        except BaseException:
            for answer in dropped:
                await answer.aclose()
            raise

    def _once(self, attempt: Callable[[], T], dropped: list[T]) -> T:
        if dropped:
            dropped.pop().close()
        trial = _Attempt(self.breaker, self.bulkhead)
        with trial:
            if self.bulkhead is not None:
                trial.admit(self.bulkhead.acquire_sync(remaining()))
            dropped.append(result := trial.judge(attempt()))
        return result

    async def _aonce(self, attempt: Callable[[], Awaitable[A]], dropped: list[A]) -> A:
        if dropped:
            await dropped.pop().aclose()
        trial = _Attempt(self.breaker, self.bulkhead)
        with trial:
            if self.bulkhead is not None:
                trial.admit(await self.bulkhead.acquire_async(remaining()))
            dropped.append(result := trial.judge(await attempt()))
        return result


class GuardOptions(TypedDict, total=False):
    breaker: str | None
    retry: RetryPolicy | None
    bulkhead: Bulkhead | None
    retry_methods: frozenset[str]
