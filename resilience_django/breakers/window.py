"""A sliding window of per-second buckets with running totals, and an EWMA of the failure rate.

The window is a ring of ``size`` one-second buckets holding calls, failures and
slow calls.  Recording adds to the current bucket and to running totals, so a
rate is O(1) to read.  Time moves the ring lazily: the first record in a new
second calls :meth:`SlidingWindow.roll`, which clears the buckets that fell out.

``roll`` also recomputes the totals from the buckets.  That costs O(size) once a
second, and it is what lets the breaker's closed-state hot path add to the
counters without a lock: under the GIL ``x += 1`` on a list item or attribute is
a read-add-write that another thread can interleave with, so two racing threads
may lose one increment.  A lost increment is a statistical blip for one second;
recomputing the totals at each roll keeps it from drifting the totals forever.

The EWMA is over *seconds*, not calls: when a second with calls closes, its
failure rate is blended in with weight ``alpha``.  That keeps the hot path free
of float arithmetic and makes the smoothing independent of traffic volume.
"""

from __future__ import annotations

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Per-second buckets over the last ``size`` seconds; call :meth:`roll` under a lock."""

    __slots__ = (
        "alpha",
        "calls",
        "current",
        "done_calls",
        "done_failures",
        "done_slow",
        "ewma",
        "failures",
        "idx",
        "size",
        "slow",
        "total_calls",
        "total_failures",
        "total_slow",
    )

    def __init__(self, size: int, alpha: float = 0.3, now: float = 0.0) -> None:
        self.size = max(1, int(size))
        self.alpha = alpha
        self.calls = [0] * self.size
        self.failures = [0] * self.size
        self.slow = [0] * self.size
        self.total_calls = 0
        self.total_failures = 0
        self.total_slow = 0
        # Counts of buckets already closed, for lifetime counters (metrics).
        self.done_calls = 0
        self.done_failures = 0
        self.done_slow = 0
        self.current = int(now)
        self.idx = 0
        self.ewma = 0.0

    def roll(self, second: int) -> None:
        """Move the ring to ``second``; a no-op when another thread already did."""
        gap = second - self.current
        if gap <= 0:
            return
        i = self.idx
        calls = self.calls[i]
        if calls:
            failures = self.failures[i]
            self.done_calls += calls
            self.done_failures += failures
            self.done_slow += self.slow[i]
            self.ewma += self.alpha * (failures / calls - self.ewma)
        size = self.size
        for step in range(1, min(gap, size) + 1):
            j = (i + step) % size
            self.calls[j] = self.failures[j] = self.slow[j] = 0
        self.idx = (i + gap) % size
        self.current = second
        self.total_calls = sum(self.calls)
        self.total_failures = sum(self.failures)
        self.total_slow = sum(self.slow)

    def add(self, now: float, *, failure: bool, slow: bool) -> None:
        """Record one call (the locked path; the hot path inlines the success case)."""
        second = int(now)
        if second != self.current:
            self.roll(second)
        i = self.idx
        self.calls[i] += 1
        self.total_calls += 1
        if failure:
            self.failures[i] += 1
            self.total_failures += 1
        if slow:
            self.slow[i] += 1
            self.total_slow += 1

    @property
    def failure_rate(self) -> float:
        return self.total_failures / self.total_calls if self.total_calls else 0.0

    @property
    def slow_rate(self) -> float:
        return self.total_slow / self.total_calls if self.total_calls else 0.0

    def lifetime(self) -> tuple[int, int, int]:
        """(calls, failures, slow) ever recorded, closed buckets plus the current one."""
        i = self.idx
        return (
            self.done_calls + self.calls[i],
            self.done_failures + self.failures[i],
            self.done_slow + self.slow[i],
        )
