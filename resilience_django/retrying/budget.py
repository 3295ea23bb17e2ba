"""Retry budgets: retries may add at most a share of the calls, so they cannot multiply an outage.

In the spirit of Finagle's ``RetryBudget`` (defaults: 20 % of requests, a
floor of 10 retries a second, deposits kept for 10 seconds): every call
deposits, every retry withdraws, and only what was deposited in the last
``ttl`` seconds counts.  Without a budget, three attempts per call turn a
struggling dependency's 1x load into 3x exactly when it can take it least.

    allowed retries in the window = min_per_second * ttl + ratio * calls in the window
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..clock import Clock, monotonic

__all__ = ["MAX_BUDGETS", "BudgetRegistry", "RetryBudget", "budget_for", "budgets"]

_BUCKETS = 10


class RetryBudget:
    """A thread-safe retry budget over a sliding window of ``ttl`` seconds.

    >>> from resilience_django.clock import ManualClock
    >>> budget = RetryBudget(ratio=0.5, min_per_second=0, ttl=10, clock=ManualClock())
    >>> for _ in range(4):
    ...     budget.deposit()
    >>> [budget.try_withdraw() for _ in range(3)]
    [True, True, False]
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_epochs",
        "_lock",
        "_retries",
        "_width",
        "min_per_second",
        "ratio",
        "ttl",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Clock = monotonic,
    ) -> None:
        if ratio < 0 or min_per_second < 0 or ttl <= 0:
            raise ValueError("need ratio >= 0, min_per_second >= 0 and ttl > 0")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.ttl = ttl
        self._clock = clock
        self._width = ttl / _BUCKETS
        # A ring of per-slice counters; a slice older than ttl is reset on reuse.
        self._epochs = [-1] * _BUCKETS
        self._calls = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        # Held for a handful of integer operations; outbound calls around it
        # take milliseconds, so contention is negligible.
        self._lock = threading.Lock()

    def _slot(self) -> int:
        epoch = int(self._clock() / self._width)
        slot = epoch % _BUCKETS
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._calls[slot] = 0
            self._retries[slot] = 0
        return slot

    def _live(self, counts: list[int]) -> int:
        oldest = int(self._clock() / self._width) - _BUCKETS + 1
        return sum(c for c, e in zip(counts, self._epochs, strict=True) if e >= oldest)

    def deposit(self) -> None:
        """Count one call (its first attempt)."""
        with self._lock:
            self._calls[self._slot()] += 1

    def balance(self) -> float:
        """Retries still allowed in the current window."""
        with self._lock:
            self._slot()
            return self._balance()

    def _balance(self) -> float:
        allowed = self.min_per_second * self.ttl + self.ratio * self._live(self._calls)
        return allowed - self._live(self._retries)

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        with self._lock:
            slot = self._slot()
            if self._balance() < 1:
                return False
            self._retries[slot] += 1
            return True

    def reset(self) -> None:
        """Forget every call and retry counted (tests)."""
        with self._lock:
            self._epochs = [-1] * _BUCKETS
            self._calls = [0] * _BUCKETS
            self._retries = [0] * _BUCKETS

    def __repr__(self) -> str:
        return f"<RetryBudget ratio={self.ratio} balance={self.balance():.1f}>"


MAX_BUDGETS = 10_000
"""How many targets' budgets a process keeps (least recently used go first).

Targets come from callers' URLs (a transport's policy without a ``target`` budgets
each host), so without a bound a flood of distinct hosts would keep a budget each
for ever.  Ten thousand is far more dependencies than a service talks to, and
about 8 MB at most.
"""


class BudgetRegistry:
    """The process-wide budgets, one per target, at most ``max_size`` of them (LRU).

    An evicted target that comes back gets a fresh budget: it starts with the
    floor and no history, which is what a target unseen for ``max_size`` other
    targets deserves.  A policy that already holds a budget keeps using it.
    """

    __slots__ = ("_budgets", "_lock", "max_size")

    def __init__(self, max_size: int = MAX_BUDGETS) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._budgets: OrderedDict[str, RetryBudget] = OrderedDict()
        # Guards the order as well as the entries: move_to_end and popitem from
        # two threads at once could otherwise evict the budget just refreshed.
        self._lock = threading.Lock()

    def get(
        self, target: str, ratio: float = 0.2, *, min_per_second: float = 10.0, ttl: float = 10.0
    ) -> RetryBudget:
        with self._lock:
            budget = self._budgets.get(target)
            if budget is not None:
                self._budgets.move_to_end(target)
                return budget
            budget = self._budgets[target] = RetryBudget(
                ratio, min_per_second=min_per_second, ttl=ttl
            )
            while len(self._budgets) > self.max_size:
                self._budgets.popitem(last=False)
            return budget

    def __len__(self) -> int:
        return len(self._budgets)

    def __contains__(self, target: object) -> bool:
        return target in self._budgets

    def clear(self) -> None:
        with self._lock:
            self._budgets.clear()

    def reset_all(self) -> None:
        """Empty every budget in place: retry policies keep the budget they hold (tests)."""
        with self._lock:
            held = list(self._budgets.values())
        for budget in held:
            budget.reset()


budgets = BudgetRegistry()


def budget_for(
    target: str, ratio: float = 0.2, *, min_per_second: float = 10.0, ttl: float = 10.0
) -> RetryBudget:
    """The process-wide budget of ``target``, created on first use.

    One target (a downstream service) shares one budget across every call site;
    the first caller's settings win.  At most :data:`MAX_BUDGETS` targets are
    kept (``budgets.max_size`` changes it); the least recently looked up goes first.
    """
    return budgets.get(target, ratio, min_per_second=min_per_second, ttl=ttl)
