"""A sliding window of per-second buckets with running totals, and an EWMA of the failure rate.

Why it is built this way (O(1) records, a lazy roll, an EWMA over seconds): docs/breakers.md.
"""

from __future__ import annotations

__all__ = ["OutcomeWindow"]


class OutcomeWindow:
    """Per-second buckets over the last ``size`` seconds; call :meth:`roll` under a lock."""

    __slots__ = (
        "alpha",
        "base_calls",
        "base_failures",
        "base_slow",
        "calls",
        "cur_calls",
        "cur_failures",
        "cur_slow",
        "current",
        "done_calls",
        "done_failures",
        "ewma",
        "failures",
        "idx",
        "roll_at",
        "size",
        "slow",
    )

    def __init__(self, size: int, alpha: float = 0.3, now: float = 0.0) -> None:
        self.size = max(1, int(size))
        self.alpha = alpha
        # Ring of closed seconds; slot ``idx`` belongs to the current second and is
        # only written when that second closes.
        self.calls = [0] * self.size
        self.failures = [0] * self.size
        self.slow = [0] * self.size
        self.cur_calls = self.cur_failures = self.cur_slow = 0
        self.base_calls = self.base_failures = self.base_slow = 0
        # Counts of seconds already closed, for lifetime counters (metrics).
        self.done_calls = self.done_failures = 0
        self.current = int(now)
        self.roll_at = float(self.current + 1)
        self.idx = 0
        self.ewma = 0.0

    def roll(self, second: int) -> None:
        """Move the ring to ``second``; a no-op when another thread already did."""
        gap = second - self.current
        if gap <= 0:
            return
        i = self.idx
        size = self.size
        calls, failures, slow = self.cur_calls, self.cur_failures, self.cur_slow
        self.cur_calls = self.cur_failures = self.cur_slow = 0
        if calls:
            self.done_calls += calls
            self.done_failures += failures
            self.ewma += self.alpha * (failures / calls - self.ewma)
        if gap > size:
            # Idle for longer than the window: the EWMA starts afresh, as the totals do (a
            # first call after an idle hour must not trip on failures an hour old).
            self.ewma = 0.0
        self.calls[i], self.failures[i], self.slow[i] = calls, failures, slow
        for step in range(1, min(gap, size) + 1):
            j = (i + step) % size
            self.calls[j] = self.failures[j] = self.slow[j] = 0
        self.idx = (i + gap) % size
        self.current = second
        self.roll_at = float(second + 1)
        self.base_calls = sum(self.calls)
        self.base_failures = sum(self.failures)
        self.base_slow = sum(self.slow)

    def add(self, now: float, *, failure: bool, slow: bool) -> None:
        """Record one call (the locked path; the hot path inlines the success case)."""
        if now >= self.roll_at:
            self.roll(int(now))
        self.cur_calls += 1
        self.cur_failures += failure
        self.cur_slow += slow

    @property
    def total_calls(self) -> int:
        return self.base_calls + self.cur_calls

    @property
    def total_failures(self) -> int:
        return self.base_failures + self.cur_failures

    @property
    def total_slow(self) -> int:
        return self.base_slow + self.cur_slow

    @property
    def failure_rate(self) -> float:
        calls = self.total_calls
        return self.total_failures / calls if calls else 0.0

    @property
    def slow_rate(self) -> float:
        calls = self.total_calls
        return self.total_slow / calls if calls else 0.0

    def lifetime(self) -> tuple[int, int]:
        """(calls, failures) ever recorded, closed seconds plus the current one."""
        return self.done_calls + self.cur_calls, self.done_failures + self.cur_failures
