"""Bulkhead: a concurrency limit with a bounded FIFO queue, for threads and tasks alike.

At most ``limit`` requests run at once, at most ``queue`` wait for a slot, and
each waits at most the timeout its caller gives (``min(max_wait, remaining
deadline)``).  ``critical_share`` of the slots is reserved: ordinary requests
may use only the rest, critical ones may use all of it, and a freed slot goes
to a waiting critical request first.

Why there is no lock, and why it is still correct for threads and the loop
together: one bulkhead serves the async views in the event loop *and* sync
views in worker threads (WSGI, or ASGI running sync middleware), so plain
counters would race, and a ``threading.Lock`` on the loop could stall every
task while a thread that holds it waits for the GIL.  Instead every shared
step is a single atomic operation on a built-in container (``deque.pop`` /
``append`` / ``remove``, ``dict.pop``), which CPython runs whole under the GIL
and free-threaded CPython guards with a per-object lock:

* a free slot is a token in ``_Pool.tokens``; taking one is ``pop()``, so two
  takers can never both get the last one: in-flight never exceeds the limit;
* a waiting request is claimed by exactly one party through
  ``_claims.pop(waiter)``: either a releaser (which then hands it a token) or
  the waiter itself giving up; whoever loses the pop knows the other won;
* a releaser appends a token and *then* looks for waiters, a waiter enqueues
  and *then* looks for tokens (Dekker's pattern): with sequentially
  consistent atomic steps at least one of them sees the other, so no waiter
  sleeps while a token lies free.

Threads block on a per-waiter ``threading.Lock`` (sync path only); tasks await
a future of their own loop, woken with ``call_soon_threadsafe`` when the
releaser is a thread.  The adaptive limit is updated under a *try*-lock that
nobody ever waits on: if it is busy, the sample is left for the next release.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import Final

from .. import metrics
from ..clock import Clock, monotonic
from .adaptive import AdaptiveLimit

__all__ = ["Bulkhead", "Permit", "Shed"]

_MISSING: Final = object()


class Shed:
    """A request the bulkhead turned away; answer 503 with ``Retry-After``."""

    __slots__ = ("reason", "retry_after")
    admitted = False

    def __init__(self, reason: str, retry_after: float) -> None:
        self.reason = reason  # "queue_full" or "timeout"
        self.retry_after = retry_after  # seconds; a hint, not a promise

    def release(self) -> None:
        """Nothing to give back; here so callers can release whatever they got."""

    def __repr__(self) -> str:
        return f"<Shed {self.reason} retry_after={self.retry_after:.3f}>"


class _Pool:
    """Slots of one kind: ``tokens`` are the free ones, ``burn`` the ones to destroy."""

    __slots__ = ("burn", "size", "tokens")

    def __init__(self, size: int) -> None:
        self.size = size
        self.tokens: deque[bool] = deque([True] * size)
        # Shrinking cannot take back slots in use; each marker here destroys
        # one slot when it is released instead of returning it.
        self.burn: deque[bool] = deque()


class _Waiter:
    __slots__ = ("critical", "future", "lock", "loop", "pool")

    def __init__(
        self,
        critical: bool,
        *,
        lock: threading.Lock | None = None,
        future: asyncio.Future[None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # Everything is set before the waiter is published in a queue.
        self.critical = critical
        self.pool: _Pool | None = None
        self.lock = lock
        self.future = future
        self.loop = loop


class Permit:
    """A slot held by an admitted request; ``release()`` it exactly once (or use ``with``)."""

    __slots__ = ("_bulkhead", "_pool", "started_at")
    admitted = True

    def __init__(self, bulkhead: Bulkhead, pool: _Pool, started_at: float) -> None:
        self._bulkhead = bulkhead
        self._pool: _Pool | None = pool
        self.started_at = started_at

    def release(self) -> None:
        pool = self._pool
        if pool is not None:
            self._pool = None
            self._bulkhead._release(pool, self.started_at)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Bulkhead:
    """Concurrency limit with a bounded FIFO queue and a reserved critical share.

    ``limit`` is a fixed number or an ``AdaptiveLimit`` that follows latency.

    >>> bulkhead = Bulkhead("orders", 2, queue=0)
    >>> first, second = bulkhead.acquire_sync(0), bulkhead.acquire_sync(0)
    >>> bulkhead.acquire_sync(0).admitted
    False
    >>> first.release(); second.release()
    """

    __slots__ = (
        "_adapt_busy",
        "_adaptive",
        "_claims",
        "_crit_q",
        "_general",
        "_hold",
        "_norm_q",
        "_queue_slots",
        "_reserved",
        "_samples",
        "clock",
        "critical_share",
        "name",
        "queue",
        "report_metrics",
    )

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
        if not 0.0 <= critical_share < 1.0:
            raise ValueError("critical_share must be in [0, 1)")
        self.name = name
        self.queue = queue
        self.critical_share = critical_share
        self.clock = clock
        self.report_metrics = report_metrics
        self._adaptive = limit if isinstance(limit, AdaptiveLimit) else None
        size = limit.limit if isinstance(limit, AdaptiveLimit) else limit
        if size < 1:
            raise ValueError("limit must be at least 1")
        reserved = self._reserved_for(size)
        self._general = _Pool(size - reserved)
        self._reserved = _Pool(reserved)
        self._queue_slots: deque[bool] = deque([True] * queue)
        self._norm_q: deque[_Waiter] = deque()
        self._crit_q: deque[_Waiter] = deque()
        self._claims: dict[_Waiter, None] = {}
        self._samples: deque[tuple[float, int]] = deque(maxlen=4096)
        self._adapt_busy = threading.Lock()
        self._hold = 0.0  # moving average of how long a slot is held

    # --- introspection ------------------------------------------------------

    @property
    def limit(self) -> int:
        return self._general.size + self._reserved.size

    @property
    def inflight(self) -> int:
        g, r = self._general, self._reserved
        return g.size - len(g.tokens) + r.size - len(r.tokens) + len(g.burn) + len(r.burn)

    @property
    def waiting(self) -> int:
        return self.queue - len(self._queue_slots)

    # --- admission ----------------------------------------------------------

    def acquire_sync(self, timeout: float | None, critical: bool = False) -> Permit | Shed:
        """Admit now, or wait (blocking this thread) up to ``timeout`` seconds in FIFO order."""
        pool = self._take(critical)
        if pool is not None:
            return self._admit(pool)
        if timeout is not None and timeout <= 0:
            return self._shed("queue_full")
        lock = threading.Lock()
        lock.acquire()  # released by the releaser that grants us a slot
        waiter = self._enqueue(_Waiter(critical, lock=lock))
        if waiter is None:
            return self._shed("queue_full")
        pool = self._recheck(waiter)
        if pool is not None:
            return self._admit(pool)
        if not lock.acquire(timeout=-1 if timeout is None else timeout):
            if self._withdraw(waiter):
                return self._shed("timeout")
            lock.acquire()  # a releaser claimed us first; its wake-up is on its way
        self._queue_slots.append(True)
        assert waiter.pool is not None
        return self._admit(waiter.pool)

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
        if timeout is not None and timeout <= 0:
            return self._shed("queue_full")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = self._enqueue(_Waiter(critical, future=future, loop=loop))
        if waiter is None:
            return self._shed("queue_full")
        pool = self._recheck(waiter)
        if pool is not None:
            return self._admit(pool)
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
        self._queue_slots.append(True)
        assert waiter.pool is not None
        return self._admit(waiter.pool)

    # --- internals ----------------------------------------------------------

    def _reserved_for(self, size: int) -> int:
        return min(size - 1, round(size * self.critical_share)) if self.critical_share else 0

    def _take(self, critical: bool) -> _Pool | None:
        # No barging past waiters of the same or higher rank: FIFO holds.
        if self._crit_q or (not critical and self._norm_q):
            return None
        return self._take_any(critical)

    def _take_any(self, critical: bool) -> _Pool | None:
        try:
            self._general.tokens.pop()
            return self._general
        except IndexError:
            pass
        if critical:
            try:
                self._reserved.tokens.pop()
                return self._reserved
            except IndexError:
                pass
        return None

    def _enqueue(self, waiter: _Waiter) -> _Waiter | None:
        try:
            self._queue_slots.pop()
        except IndexError:
            return None
        self._claims[waiter] = None
        (self._crit_q if waiter.critical else self._norm_q).append(waiter)
        return waiter

    def _recheck(self, waiter: _Waiter) -> _Pool | None:
        """After enqueueing, look for a token freed while nobody was seen waiting."""
        pool = self._take_any(waiter.critical)
        if pool is None:
            return None
        if self._withdraw(waiter):
            return pool
        self._put(pool)  # a releaser granted us one meanwhile: one is enough
        return None

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Give up waiting; False when a releaser claimed this waiter first."""
        if self._claims.pop(waiter, _MISSING) is _MISSING:
            return False
        # ValueError: a releaser popped it and then lost the claim.
        with contextlib.suppress(ValueError):
            (self._crit_q if waiter.critical else self._norm_q).remove(waiter)
        self._queue_slots.append(True)
        return True

    def _abandon(self, waiter: _Waiter) -> None:
        """The waiting task was cancelled: withdraw, or return the slot granted to it."""
        if self._withdraw(waiter):
            return
        self._queue_slots.append(True)
        future = waiter.future
        assert future is not None
        if future.done():  # delivered before we were cancelled
            assert waiter.pool is not None
            self._put(waiter.pool)
        else:
            future.cancel()  # _deliver sees it cancelled and returns the slot

    def _admit(self, pool: _Pool) -> Permit:
        if self.report_metrics:
            metrics.inflight(self.name, 1)
        return Permit(self, pool, self.clock())

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
            metrics.inflight(self.name, -1)
        self._put(pool)
        if self._adaptive is not None:
            self._samples.append((held, self.inflight))
            self._adapt()

    def _put(self, pool: _Pool) -> None:
        """Return a slot: destroy it, hand it to the first eligible waiter, or free it."""
        try:
            pool.burn.pop()
            return
        except IndexError:
            pass
        while True:
            if self._grant(pool):
                return
            pool.tokens.append(True)
            # Dekker's other half: a waiter may have enqueued after we looked.
            if not (self._crit_q or (pool is self._general and self._norm_q)):
                return
            try:
                pool.tokens.pop()
            except IndexError:
                return  # someone (perhaps that waiter) took it

    def _grant(self, pool: _Pool) -> bool:
        queues = (self._crit_q, self._norm_q) if pool is self._general else (self._crit_q,)
        for q in queues:
            while True:
                try:
                    waiter = q.popleft()
                except IndexError:
                    break
                if self._claims.pop(waiter, _MISSING) is _MISSING:
                    continue  # it gave up already
                waiter.pool = pool
                if waiter.lock is not None:
                    waiter.lock.release()
                    return True
                if self._wake(waiter):
                    return True
                self._queue_slots.append(True)  # its loop is gone; so is the waiter
        return False

    def _wake(self, waiter: _Waiter) -> bool:
        loop = waiter.loop
        assert loop is not None
        if asyncio._get_running_loop() is loop:
            self._deliver(waiter)
            return True
        try:
            loop.call_soon_threadsafe(self._deliver, waiter)
        except RuntimeError:  # its loop is closed: nobody will take the slot
            return False
        return True

    def _deliver(self, waiter: _Waiter) -> None:
        future = waiter.future
        assert future is not None and waiter.pool is not None
        if future.done():  # cancelled while the wake-up was in flight
            self._put(waiter.pool)
        else:
            future.set_result(None)

    # --- adaptive limit -----------------------------------------------------

    def _adapt(self) -> None:
        adaptive = self._adaptive
        assert adaptive is not None
        # A try-lock: nobody ever waits here, the loop least of all.
        if not self._adapt_busy.acquire(blocking=False):
            return
        try:
            samples = self._samples
            while samples:
                held, inflight = samples.popleft()
                adaptive.update(held, inflight)
            new = adaptive.limit
            if new != self.limit:
                self._resize(new)
        finally:
            self._adapt_busy.release()

    def resize(self, limit: int) -> None:
        """Set a new fixed limit (live tuning); slots in use drain before a shrink bites."""
        with self._adapt_busy:
            self._resize(limit)

    def _resize(self, limit: int) -> None:
        limit = max(1, limit)
        reserved = self._reserved_for(limit)
        self._resize_pool(self._general, limit - reserved)
        self._resize_pool(self._reserved, reserved)

    def _resize_pool(self, pool: _Pool, size: int) -> None:
        delta = size - pool.size
        pool.size = size
        for _ in range(delta):  # grow: first cancel pending burns
            try:
                pool.burn.pop()
            except IndexError:
                self._put(pool)
        for _ in range(-delta):  # shrink: take free slots, else burn one on release
            try:
                pool.tokens.pop()
            except IndexError:
                pool.burn.append(True)

    def __repr__(self) -> str:
        return (
            f"<Bulkhead {self.name} inflight={self.inflight}/{self.limit} waiting={self.waiting}>"
        )
