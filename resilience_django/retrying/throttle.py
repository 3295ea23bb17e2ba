"""Client-side adaptive throttling from Google's SRE book, "Handling Overload" (docs/retries.md)."""

from __future__ import annotations

import random
from collections.abc import Callable

from ..clock import Clock, monotonic
from ..exceptions import ResilienceError
from .budget import LruRegistry, WindowCounts

__all__ = ["AdaptiveThrottle", "LocallyThrottled", "reset_throttles", "throttle_for"]


class LocallyThrottled(ResilienceError):
    """Rejected on the client: the target has been refusing most requests lately."""

    def __init__(self, target: str, probability: float) -> None:
        super().__init__(f"{target}: rejected locally (throttle probability {probability:.2f})")
        self.target, self.probability = target, probability


class AdaptiveThrottle(WindowCounts):
    """Reject locally with the SRE formula's probability; report each outcome back.

    >>> from resilience_django.clock import ManualClock
    >>> t = AdaptiveThrottle("x", clock=ManualClock(), random_=lambda: 0.5)
    >>> for _ in range(10):
    ...     _ = t.allow(); t.record(accepted=False)
    >>> round(t.probability(), 2)
    0.91
    """

    __slots__ = ("_random", "k", "target", "window")

    def __init__(
        self, target: str, *, k: float = 2.0, window: float = 120.0, clock: Clock = monotonic,
        random_: Callable[[], float] = random.random,
    ) -> None:  # fmt: skip
        if k < 1 or window <= 0:
            raise ValueError("need k >= 1 and window > 0")
        self.target, self.k, self.window = target, k, window
        self._random = random_
        super().__init__(window, 24, clock)  # counts requests, accepts

    def _probability(self) -> float:
        requests, accepts = self.totals()
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def probability(self) -> float:
        """The current chance that ``allow()`` says no."""
        with self._lock:
            return self._probability()

    def allow(self) -> bool:
        """Count a request and decide whether to send it (False: reject it locally)."""
        with self._lock:
            # The history decides, then this request joins it: local rejections raise p.
            p = self._probability()
            self.add(0)
        return p <= 0.0 or self._random() >= p

    def check(self) -> None:
        """``allow()`` that raises :class:`LocallyThrottled` instead of returning False."""
        if not self.allow():
            raise LocallyThrottled(self.target, self.probability())

    def record(self, *, accepted: bool) -> None:
        """Report whether the backend accepted a request that was sent."""
        if accepted:
            with self._lock:
                self.add(1)

    def __repr__(self) -> str:
        return f"<AdaptiveThrottle {self.target} p={self.probability():.2f}>"


# Bounded like the budgets (budget.py): targets may be callers' hosts.
_throttles: LruRegistry[AdaptiveThrottle] = LruRegistry()
reset_throttles = _throttles.reset_all  # every throttle emptied in place: policies keep theirs


def throttle_for(target: str) -> AdaptiveThrottle:
    """The process-wide throttle of ``target`` (at most ``MAX_BUDGETS``, as the budgets)."""
    return _throttles.get_or_make(target, lambda: AdaptiveThrottle(target))
