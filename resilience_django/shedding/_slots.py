"""The lock-free core of the bulkhead: slots as tokens, waiters handed slots in FIFO order;
why one atomic step per shared change needs no lock: docs/shedding.md ("Correct without a lock")."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from operator import length_hint


class _Pool:
    """Slots of one kind: free ones are ``tokens`` or still in ``mints``; ``burn`` marks the
    ones to destroy."""

    __slots__ = ("burn", "mints", "size", "tokens")

    def __init__(self, size: int) -> None:
        self.size = size
        self.tokens: deque[bool] = deque()  # given back after use
        self.mints: deque[Iterator[int]] = deque([iter(range(size))])  # never used; one per growth
        # Shrinking cannot take back slots in use: each marker destroys one on its release.
        self.burn: deque[bool] = deque()

    def take(self) -> bool:
        try:
            self.tokens.pop()
            return True
        except IndexError:
            pass
        while True:
            try:
                mint = self.mints[0]
            except IndexError:
                return False
            if next(mint, None) is not None:
                return True
            # Spent: drop it (ValueError: another taker dropped it first).
            with contextlib.suppress(ValueError):
                self.mints.remove(mint)

    @property
    def free(self) -> int:
        return len(self.tokens) + sum(map(length_hint, list(self.mints)))


@dataclass(slots=True, eq=False)
class _Waiter:
    # Everything is set before the waiter is published in a queue.
    critical: bool
    lock: threading.Lock | None = None
    future: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    pool: _Pool | None = None


class SlotQueue:
    """Slots (ordinary and reserved-for-critical) and the FIFO queues of their waiters."""

    __slots__ = (
        "_claims", "_crit_q", "_general", "_norm_q", "_places", "_reserved", "critical_share",
        "queue",
    )  # fmt: skip

    def __init__(self, size: int, *, queue: int, critical_share: float) -> None:
        if not 0.0 <= critical_share < 1.0:
            raise ValueError("critical_share must be in [0, 1)")
        if size < 1:
            raise ValueError("limit must be at least 1")
        self.queue = queue
        self.critical_share = critical_share
        reserved = self._reserved_for(size)
        self._general = _Pool(size - reserved)
        self._reserved = _Pool(reserved)
        self._places = _Pool(queue)  # free places in the queue, as slots are
        self._norm_q: deque[_Waiter] = deque()
        self._crit_q: deque[_Waiter] = deque()
        self._claims: dict[_Waiter, bool] = {}

    @property
    def limit(self) -> int:
        return self._general.size + self._reserved.size

    @property
    def inflight(self) -> int:
        g, r = self._general, self._reserved
        return g.size - g.free + r.size - r.free + len(g.burn) + len(r.burn)

    @property
    def waiting(self) -> int:
        return self.queue - self._places.free

    def _reserved_for(self, size: int) -> int:
        return min(size - 1, round(size * self.critical_share)) if self.critical_share else 0

    def _take(self, critical: bool) -> _Pool | None:
        # No barging past waiters of the same or higher rank: FIFO holds.
        if self._crit_q or (not critical and self._norm_q):
            return None
        return self._take_any(critical)

    def _take_any(self, critical: bool) -> _Pool | None:
        if self._general.take():
            return self._general
        if critical and self._reserved.take():
            return self._reserved
        return None

    def _enqueue(self, waiter: _Waiter) -> _Waiter | None:
        if not self._places.take():
            return None
        self._claims[waiter] = True
        (self._crit_q if waiter.critical else self._norm_q).append(waiter)
        return waiter

    def _recheck(self, waiter: _Waiter) -> _Pool | None:
        # After enqueueing, look for a token freed while nobody was seen waiting.
        pool = self._take_any(waiter.critical)
        if pool is None:
            return None
        if self._withdraw(waiter):
            return pool
        self._put(pool)  # a releaser granted us one meanwhile: one is enough
        return None

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Give up waiting; False when a releaser claimed this waiter first."""
        if not self._claims.pop(waiter, False):
            return False
        # ValueError: a releaser popped it and then lost the claim.
        with contextlib.suppress(ValueError):
            (self._crit_q if waiter.critical else self._norm_q).remove(waiter)
        self._places.tokens.append(True)
        return True

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter gives up for good (cancelled, interrupted): withdraw, or hand on the slot
        granted to it meanwhile."""
        if self._withdraw(waiter):
            return
        self._places.tokens.append(True)
        future = waiter.future
        if future is None:  # a thread: the releaser that claimed it sets the slot next
            while waiter.pool is None:
                time.sleep(0)
            self._put(waiter.pool)
        elif future.done():  # delivered before we were cancelled
            assert waiter.pool is not None
            self._put(waiter.pool)
        else:
            future.cancel()  # _deliver sees it cancelled and returns the slot

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
                if not self._claims.pop(waiter, False):
                    continue  # it gave up already
                waiter.pool = pool
                if waiter.lock is not None:
                    waiter.lock.release()
                    return True
                if self._wake(waiter):
                    return True
                self._places.tokens.append(True)  # its loop is gone; so is the waiter
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

    def _resize(self, limit: int) -> None:
        limit = max(1, limit)
        reserved = self._reserved_for(limit)
        self._resize_pool(self._general, limit - reserved)
        self._resize_pool(self._reserved, reserved)

    def _resize_pool(self, pool: _Pool, size: int) -> None:
        delta = size - pool.size
        pool.size = size
        grow = delta
        while grow > 0:  # grow: first cancel pending burns (no more than are in use)
            try:
                pool.burn.pop()
            except IndexError:
                break
            grow -= 1
        if grow > 0:
            # New slots are minted, then waiters served as a release would (a waiter that
            # enqueues after this look finds the mint in its recheck: Dekker's pattern again).
            pool.mints.append(iter(range(grow)))
            while self._crit_q or (pool is self._general and self._norm_q):
                if not pool.take():
                    break
                self._put(pool)
        if delta < 0:  # shrink: take free slots, else burn one on each release
            taken = sum(1 for _ in islice(iter(pool.take, False), -delta))
            pool.burn.extend([True] * (-delta - taken))
