"""Bulkhead: a concurrency limit with a bounded FIFO queue, for threads and tasks alike
(docs/shedding.md); the lock-free admission paths are in ``_slots.py``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from .. import metrics
from ..clock import Clock, monotonic
from ._slots import SlotQueue, _Pool, _Waiter
from .adaptive import AdaptiveLimit

__all__ = ["Bulkhead", "Permit", "Shed"]


@dataclass(slots=True, eq=False, repr=False)
class Shed:
    """A request the bulkhead turned away; answer 503 with ``Retry-After``."""

    reason: str  # "queue_full" or "timeout"
    retry_after: float  # seconds; a hint, not a promise
    admitted: ClassVar[bool] = False

    def release(self) -> None:
        """Nothing to give back; here so callers can release whatever they got."""

    def __repr__(self) -> str:
        return f"<Shed {self.reason} retry_after={self.retry_after:.3f}>"


class Permit:
    """A slot held by an admitted request; ``release()`` it exactly once (or use ``with``)."""

    __slots__ = ("_bulkhead", "_slot", "started_at")
    admitted = True

    def __init__(self, bulkhead: Bulkhead, pool: _Pool, started_at: float) -> None:
        self._bulkhead = bulkhead
        # One pop() takes it: released from two threads at once (a client gone, the response
        # closed), only one gives the slot back, with or without a GIL.
        self._slot = [pool]
        self.started_at = started_at

    @property
    def exempt_streams(self) -> bool:
        """Whether a streamed response gives this slot back when its view returns."""
        return self._bulkhead.exempt_streams

    def release(self) -> None:
        try:
            pool = self._slot.pop()
        except IndexError:
            return  # released already
        self._bulkhead._release(pool, self.started_at)

    def __del__(self) -> None:
        # A safety net, not the way out: a permit dropped unreleased gives its slot
        # back when it is collected, instead of never (docs/shedding.md).
        if not self._slot:  # released (the usual case): no exception to pay for
            return
        try:
            pool = self._slot.pop()
        except IndexError:
            return  # released meanwhile
        self._bulkhead._lost(pool)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Bulkhead(SlotQueue):
    """Concurrency limit with a bounded FIFO queue and a reserved critical share; ``limit`` is a
    fixed number or an ``AdaptiveLimit`` that follows latency.

    >>> bulkhead = Bulkhead("orders", 2, queue=0)
    >>> first, second = bulkhead.acquire_sync(0), bulkhead.acquire_sync(0)
    >>> bulkhead.acquire_sync(0).admitted
    False
    >>> first.release(); second.release()
    """

    __slots__ = (
        "_adapt_busy", "_adaptive", "_hold", "_retired", "_samples", "_unreported", "clock",
        "exempt_streams", "name", "report_metrics",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        limit: int | AdaptiveLimit,
        *,
        queue: int = 0,
        critical_share: float = 0.0,
        clock: Clock = monotonic,
        report_metrics: bool = True,
    ) -> None:
        size = limit.limit if isinstance(limit, AdaptiveLimit) else limit
        super().__init__(size, queue=queue, critical_share=critical_share)
        self.name = name
        self.clock = clock
        self.report_metrics = report_metrics
        self._adaptive = limit if isinstance(limit, AdaptiveLimit) else None
        self._samples: deque[tuple[float, int]] = deque(maxlen=4096)
        self._adapt_busy = threading.Lock()
        self._hold = 0.0  # moving average of how long a slot is held
        self._retired = False
        # Slots of collected permits not yet taken off the in-flight gauge (see _lost).
        self._unreported: deque[bool] = deque()
        self.exempt_streams = False  # set from the shedding rule; see Permit
        if report_metrics:
            metrics.concurrency_limit(name, self.limit)

    def acquire_sync(self, timeout: float | None, critical: bool = False) -> Permit | Shed:
        """Admit now, or wait (blocking this thread) up to ``timeout`` seconds in FIFO order."""
        pool = self._take(critical)
        if pool is not None:
            return self._admit(pool)
        lock = threading.Lock()
        lock.acquire()  # released by the releaser that grants us a slot
        waiter = _Waiter(critical, lock=lock)
        decided = self._line_up(waiter, timeout)
        if decided is not None:
            return decided
        try:
            if not lock.acquire(timeout=-1 if timeout is None else timeout):
                if self._withdraw(waiter):
                    return self._shed("timeout")
                lock.acquire()  # a releaser claimed us first; its wake-up is on its way
        except BaseException:  # interrupted while waiting (a signal handler's exception, say)
            self._abandon(waiter)
            raise
        return self._granted(waiter)

    # A wait that runs out is answered with a Shed, not raised, hence ``timeout``.
    async def acquire_async(
        self,
        timeout: float | None,  # noqa: ASYNC109
        critical: bool = False,
    ) -> Permit | Shed:
        """Admit now, or wait (without blocking the loop) up to ``timeout`` seconds, FIFO."""
        pool = self._take(critical)
        if pool is not None:
            return self._admit(pool)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(critical, future=future, loop=loop)
        decided = self._line_up(waiter, timeout)
        if decided is not None:
            return decided
        try:
            # asyncio.wait never cancels the future it watches, not even when
            # this task is cancelled, so only _abandon decides its fate.
            await asyncio.wait((future,), timeout=timeout)
            if not future.done():
                if self._withdraw(waiter):
                    return self._shed("timeout")
                await asyncio.wait((future,))  # claimed: the wake-up is on its way
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        return self._granted(waiter)

    def _line_up(self, waiter: _Waiter, timeout: float | None) -> Permit | Shed | None:
        """Queue ``waiter``; a Permit or Shed when that settles it at once, else ``None``."""
        if (timeout is not None and timeout <= 0) or self._enqueue(waiter) is None:
            return self._shed("queue_full")
        pool = self._recheck(waiter)
        return None if pool is None else self._admit(pool)

    def _granted(self, waiter: _Waiter) -> Permit:
        self._places.tokens.append(True)  # its place in the queue is free again
        assert waiter.pool is not None
        return self._admit(waiter.pool)

    def _admit(self, pool: _Pool) -> Permit:
        if self.report_metrics:
            metrics.inflight(self.name, 1 - self._count_lost())
        return Permit(self, pool, self.clock())

    def _lost(self, pool: _Pool) -> None:
        """A permit collected unreleased: its slot back, lock-free, for this runs wherever the
        collector does (inside a metrics lock, say); the gauge is told later (``_count_lost``)."""
        self._put(pool)
        if self.report_metrics:
            self._unreported.append(True)

    def _count_lost(self) -> int:
        lost = 0
        with contextlib.suppress(IndexError):
            while self._unreported:
                self._unreported.pop()
                lost += 1
        return lost

    def _shed(self, reason: str) -> Shed:
        if self.report_metrics:
            metrics.request_rejected(self.name, "shed")
        hold = self._hold or 1.0
        # Roughly when the queue ahead would have drained.
        retry_after = hold * (self.waiting + 1) / max(1, self.limit)
        return Shed(reason, max(0.001, retry_after))

    def _release(self, pool: _Pool, started_at: float) -> None:
        held = self.clock() - started_at
        # A racy float store at worst loses one sample of a moving average.
        self._hold = held if not self._hold else self._hold * 0.9 + held * 0.1
        if self.report_metrics:
            metrics.inflight(self.name, -1 - self._count_lost())
        adaptive = self._adaptive
        if adaptive is None:
            self._put(pool)
            return
        # Counted before the slot goes back, this request included (docs/shedding.md).
        inflight = self.inflight
        self._put(pool)
        self._samples.append((held, inflight))
        # A try-lock: nobody ever waits here, the loop least of all.
        if not self._adapt_busy.acquire(blocking=False):
            return
        try:
            samples = self._samples
            while samples:
                adaptive.update(*samples.popleft())
            if adaptive.limit != self.limit:
                self._resize(adaptive.limit)
        finally:
            self._adapt_busy.release()

    def resize(self, limit: int) -> None:
        """Set a new fixed limit (live tuning); slots in use drain before a shrink bites."""
        with self._adapt_busy:
            self._resize(limit)

    def _resize(self, limit: int) -> None:
        super()._resize(limit)
        if self.report_metrics and not self._retired:
            # Operators watch an adaptive limit move beside the in-flight gauge.
            metrics.concurrency_limit(self.name, self.limit)

    def retire(self, *, gone: bool) -> None:
        """A rule edit replaced this bulkhead: stop reporting its limit (0 if the rule is ``gone``);
        permits still out are released here as usual."""
        self._retired = True
        if gone and self.report_metrics:
            metrics.concurrency_limit(self.name, 0)

    def __repr__(self) -> str:
        return (
            f"<Bulkhead {self.name} inflight={self.inflight}/{self.limit} waiting={self.waiting}>"
        )
