"""What every outbound transport does, written once: deadline → retry → breaker → bulkhead → call.

The order matters:

* the **deadline** comes first and is re-read before every attempt, so a retry
  never starts without budget and each attempt announces what is left;
* **retry** wraps the breaker, so every attempt is counted by the breaker and a
  breaker that opens mid-way stops the retries (``CircuitOpen`` is never
  retried) instead of retries hammering a dependency the breaker protects;
* the **breaker** wraps the bulkhead, so an open breaker answers without
  taking a concurrency slot, and a call refused by a full bulkhead is not
  counted against the dependency (it never reached it);
* the **bulkhead** is innermost, held only while the call is on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..breakers.registry import get_breaker
from ..conf import get_settings
from ..deadline import DeadlineExceeded, _current
from ..exceptions import BulkheadFull
from ..retrying.policy import RetryPolicy
from ..shedding.bulkhead import Bulkhead, Shed

__all__ = [
    "TIMEOUT_HEADER",
    "BulkheadFull",
    "OutboundGuard",
    "cut_short_message",
    "make_guard",
    "outbound_budget",
]

TIMEOUT_HEADER = "X-Timeout-Ms"
# Methods a transport retries by default: repeating them cannot duplicate an effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

T = TypeVar("T")


def outbound_budget(margin: float | None = None) -> tuple[float, int] | None:
    """``(seconds left for the call, ms to announce downstream)`` or ``None`` outside a deadline.

    Raises ``DeadlineExceeded`` when nothing is left, so no call starts that
    cannot finish in time.
    """
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
    """The message of the ``DeadlineExceeded`` raised in place of a client's timeout ``exc``.

    A transport caps each timeout at the remaining budget; when a capped
    timeout fires, the caller's budget ran out, not the dependency's patience,
    so the transports raise ``DeadlineExceeded`` (which breakers record as no
    verdict) instead of the client's plain timeout.
    """
    deadline = _current.get()
    where = "" if deadline is None else f" of {deadline.budget:.3f}s for {deadline.route}"
    what = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return f"the request's deadline{where} cut the call short ({what})"


class OutboundGuard:
    """Breaker, bulkhead and retry around one outbound call; HTTP-agnostic.

    ``status_of(result)`` tells the breaker which results are failures (5xx).
    """

    __slots__ = ("_by_host", "breaker", "bulkhead", "retry", "retry_methods")

    def __init__(
        self,
        *,
        breaker: str | None = None,
        bulkhead: Bulkhead | None = None,
        retry: RetryPolicy | None = None,
        retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self.breaker = breaker
        # A retry budget is per target: one flaky dependency must not spend the
        # retries of another.  Without an explicit target, the breaker's name
        # is the target, or else each host is.
        if retry is not None and retry.target is None and breaker is not None:
            retry = retry.for_target(breaker)
        self.bulkhead = bulkhead
        self.retry = retry
        self.retry_methods = frozenset(m.upper() for m in retry_methods)
        self._by_host: dict[str, RetryPolicy] = {}

    def _retry_for(self, method: str, host: str) -> RetryPolicy | None:
        policy = self.retry
        if policy is None or method not in self.retry_methods:
            return None
        if policy.target is not None:
            return policy
        bound = self._by_host.get(host)
        if bound is None:
            if len(self._by_host) >= 256:  # bounded: hosts come from callers' URLs
                self._by_host.clear()
            bound = self._by_host[host] = policy.for_target(host)
        return bound

    # -- sync ----------------------------------------------------------------

    def call(
        self, method: str, host: str, attempt: Callable[[], T], status_of: Callable[[T], int]
    ) -> T:
        policy = self._retry_for(method, host)
        if policy is None:
            return self._once(attempt, status_of)
        return policy.call(self._once, attempt, status_of)

    def _once(self, attempt: Callable[[], T], status_of: Callable[[T], int]) -> T:
        breaker = get_breaker(self.breaker) if self.breaker is not None else None
        token = breaker.acquire() if breaker is not None else None
        started = time.monotonic()
        permit = None
        if self.bulkhead is not None:
            answer = self.bulkhead.acquire_sync(_wait_budget())
            if isinstance(answer, Shed):
                if breaker is not None and token is not None:
                    breaker.release(token)
                raise BulkheadFull(self.bulkhead.name, answer.retry_after)
            permit = answer
        try:
            result = attempt()
        except BaseException as exc:
            if breaker is not None and token is not None:
                breaker.record_failure(token, time.monotonic() - started, exc=exc)
            raise
        finally:
            if permit is not None:
                permit.release()
        if breaker is not None and token is not None:
            _record(breaker, token, status_of(result), time.monotonic() - started)
        return result

    # -- async ---------------------------------------------------------------

    async def acall(
        self,
        method: str,
        host: str,
        attempt: Callable[[], Awaitable[T]],
        status_of: Callable[[T], int],
    ) -> T:
        policy = self._retry_for(method, host)
        if policy is None:
            return await self._aonce(attempt, status_of)
        return await policy.acall(self._aonce, attempt, status_of)

    async def _aonce(self, attempt: Callable[[], Awaitable[T]], status_of: Callable[[T], int]) -> T:
        breaker = get_breaker(self.breaker) if self.breaker is not None else None
        token = breaker.acquire() if breaker is not None else None
        started = time.monotonic()
        permit = None
        if self.bulkhead is not None:
            answer = await self.bulkhead.acquire_async(_wait_budget())
            if isinstance(answer, Shed):
                if breaker is not None and token is not None:
                    breaker.release(token)
                raise BulkheadFull(self.bulkhead.name, answer.retry_after)
            permit = answer
        try:
            result = await attempt()
        except BaseException as exc:
            if breaker is not None and token is not None:
                breaker.record_failure(token, time.monotonic() - started, exc=exc)
            raise
        finally:
            if permit is not None:
                permit.release()
        if breaker is not None and token is not None:
            _record(breaker, token, status_of(result), time.monotonic() - started)
        return result


def make_guard(
    *,
    breaker: str | None,
    retry: RetryPolicy | None,
    bulkhead: Bulkhead | None,
    retry_methods: frozenset[str],
) -> OutboundGuard | None:
    """A guard when any of breaker, retry or bulkhead is asked for; ``None`` keeps calls bare."""
    if breaker is None and retry is None and bulkhead is None:
        return None
    return OutboundGuard(
        breaker=breaker, bulkhead=bulkhead, retry=retry, retry_methods=retry_methods
    )


def _wait_budget() -> float | None:
    deadline = _current.get()
    return None if deadline is None else max(deadline.remaining(), 0.0)


def _record(breaker: Any, token: Any, status: int, duration: float) -> None:
    if status >= 500:
        breaker.record_failure(token, duration)
    else:
        breaker.record_success(token, duration)
