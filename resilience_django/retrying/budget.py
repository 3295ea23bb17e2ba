"""Retry budgets, after Finagle's: retries add at most a share of the calls (docs/retries.md)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from ..clock import Clock, monotonic

__all__ = ["MAX_BUDGETS", "LruRegistry", "RetryBudget", "WindowCounts", "budget_for", "budgets"]


class WindowCounts:
    """Two counters over a sliding window cut in ``slices``; subclasses count under ``_lock``."""

    __slots__ = ("_clock", "_counts", "_epochs", "_lock", "_slices", "_width")

    def __init__(self, window: float, slices: int, clock: Clock) -> None:
        self._clock, self._slices, self._width = clock, slices, window / slices
        self._lock = threading.Lock()  # held for a few integer operations
        self.reset()

    def reset(self) -> None:
        """Forget everything counted (tests)."""
        with self._lock:
            self._epochs = [-1] * self._slices
            self._counts = [[0, 0] for _ in range(self._slices)]

    def add(self, which: int) -> None:
        """Count one on counter ``which`` (0 or 1) in the current slice."""
        epoch = int(self._clock() / self._width)
        slot = epoch % self._slices
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._counts[slot] = [0, 0]
        self._counts[slot][which] += 1

    def totals(self) -> tuple[int, int]:
        """Both counters over the window."""
        oldest = int(self._clock() / self._width) - self._slices + 1
        live = [c for c, e in zip(self._counts, self._epochs, strict=True) if e >= oldest]
        return sum(c[0] for c in live), sum(c[1] for c in live)


class RetryBudget(WindowCounts):
    """A thread-safe retry budget over a sliding window of ``ttl`` seconds.

    >>> from resilience_django.clock import ManualClock
    >>> budget = RetryBudget(ratio=0.5, min_per_second=0, ttl=10, clock=ManualClock())
    >>> for _ in range(4):
    ...     budget.deposit()
    >>> [budget.try_withdraw() for _ in range(3)]
    [True, True, False]
    """

    __slots__ = ("min_per_second", "ratio", "ttl")

    def __init__(
        self, ratio: float = 0.2, *, min_per_second: float = 10.0, ttl: float = 10.0,
        clock: Clock = monotonic,
    ) -> None:  # fmt: skip
        if ratio < 0 or min_per_second < 0 or ttl <= 0:
            raise ValueError("need ratio >= 0, min_per_second >= 0 and ttl > 0")
        self.ratio, self.min_per_second, self.ttl = ratio, min_per_second, ttl
        super().__init__(ttl, 10, clock)  # counts calls, retries

    def _balance(self) -> float:
        calls, retries = self.totals()
        return self.min_per_second * self.ttl + self.ratio * calls - retries

    def deposit(self) -> None:
        """Count one call (its first attempt)."""
        with self._lock:
            self.add(0)

    def balance(self) -> float:
        """Retries still allowed in the current window."""
        with self._lock:
            return self._balance()

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        with self._lock:
            if self._balance() < 1:
                return False
            self.add(1)
            return True

    def __repr__(self) -> str:
        return f"<RetryBudget ratio={self.ratio} balance={self.balance():.1f}>"


# Targets may be callers' hosts, so a process keeps a bounded number (docs/retries.md).
MAX_BUDGETS = 10_000
_T = TypeVar("_T", bound=WindowCounts)


class LruRegistry(Generic[_T]):
    """At most ``max_size`` values by target, the least recently used dropped first."""

    __slots__ = ("_items", "_lock", "max_size")

    def __init__(self, max_size: int = MAX_BUDGETS) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._items: OrderedDict[str, _T] = OrderedDict()
        self._lock = threading.Lock()  # guards the order too, lest an eviction hit a fresh value

    def get_or_make(self, target: str, make: Callable[[], _T]) -> _T:
        with self._lock:
            item = self._items.get(target)
            if item is not None:
                self._items.move_to_end(target)
                return item
            item = self._items[target] = make()
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
            return item

    def reset_all(self) -> None:
        """Empty every value in place: retry policies keep the ones they hold (tests)."""
        with self._lock:  # each value's own lock is only ever taken inside this one
            for item in self._items.values():
                item.reset()


budgets: LruRegistry[RetryBudget] = LruRegistry()


def budget_for(
    target: str, ratio: float = 0.2, *, min_per_second: float = 10.0, ttl: float = 10.0
) -> RetryBudget:
    """The process-wide budget of ``target``, shared by every call site (the first caller's
    settings win)."""
    return budgets.get_or_make(
        target, lambda: RetryBudget(ratio, min_per_second=min_per_second, ttl=ttl)
    )
