"""Client-side adaptive throttling, from Google's SRE book ("Handling Overload").

Each client keeps, over a sliding window (two minutes in the book), the
number of ``requests`` it attempted and the number the backend ``accepts``,
and rejects a new request locally with probability::

    p = max(0, (requests - K * accepts) / (requests + 1))

With K = 2 the client sends up to twice what the backend accepts, so the
backend still sees enough traffic to notice recovery, while the rest fails
fast on the client without costing the overloaded backend anything.
Requests rejected locally count as requests, which is what makes ``p`` rise.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from ..clock import Clock, monotonic
from ..exceptions import ResilienceError

__all__ = ["AdaptiveThrottle", "LocallyThrottled", "reset_throttles", "throttle_for"]

_BUCKETS = 24


class LocallyThrottled(ResilienceError):
    """Rejected on the client: the target has been refusing most requests lately."""

    def __init__(self, target: str, probability: float) -> None:
        super().__init__(f"{target}: rejected locally (throttle probability {probability:.2f})")
        self.target = target
        self.probability = probability


class AdaptiveThrottle:
    """Reject locally with the SRE formula's probability; report each outcome back.

    >>> from resilience_django.clock import ManualClock
    >>> t = AdaptiveThrottle("x", clock=ManualClock(), random_=lambda: 0.5)
    >>> for _ in range(10):
    ...     _ = t.allow(); t.record(accepted=False)
    >>> round(t.probability(), 2)
    0.91
    """

    __slots__ = (
        "_accepts",
        "_clock",
        "_epochs",
        "_lock",
        "_random",
        "_requests",
        "_width",
        "k",
        "target",
        "window",
    )

    def __init__(
        self,
        target: str,
        *,
        k: float = 2.0,
        window: float = 120.0,
        clock: Clock = monotonic,
        random_: Callable[[], float] = random.random,
    ) -> None:
        if k < 1 or window <= 0:
            raise ValueError("need k >= 1 and window > 0")
        self.target = target
        self.k = k
        self.window = window
        self._clock = clock
        self._random = random_
        self._width = window / _BUCKETS
        self._epochs = [-1] * _BUCKETS
        self._requests = [0] * _BUCKETS
        self._accepts = [0] * _BUCKETS
        self._lock = threading.Lock()  # a few integer operations; see budget.py

    def _slot(self) -> int:
        epoch = int(self._clock() / self._width)
        slot = epoch % _BUCKETS
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._requests[slot] = 0
            self._accepts[slot] = 0
        return slot

    def _probability(self) -> float:
        oldest = int(self._clock() / self._width) - _BUCKETS + 1
        requests = accepts = 0
        for i, epoch in enumerate(self._epochs):
            if epoch >= oldest:
                requests += self._requests[i]
                accepts += self._accepts[i]
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def probability(self) -> float:
        """The current chance that ``allow()`` says no."""
        with self._lock:
            self._slot()
            return self._probability()

    def allow(self) -> bool:
        """Count a request and decide whether to send it (False: reject it locally)."""
        with self._lock:
            slot = self._slot()
            # The history decides, then this request joins it (rejected or not).
            p = self._probability()
            self._requests[slot] += 1
        return p <= 0.0 or self._random() >= p

    def check(self) -> None:
        """``allow()`` that raises :class:`LocallyThrottled` instead of returning False."""
        if not self.allow():
            raise LocallyThrottled(self.target, self.probability())

    def record(self, *, accepted: bool) -> None:
        """Report whether the backend accepted a request that was sent."""
        if accepted:
            with self._lock:
                self._accepts[self._slot()] += 1

    def reset(self) -> None:
        """Forget every request and acceptance counted (tests)."""
        with self._lock:
            self._epochs = [-1] * _BUCKETS
            self._requests = [0] * _BUCKETS
            self._accepts = [0] * _BUCKETS

    def __repr__(self) -> str:
        return f"<AdaptiveThrottle {self.target} p={self.probability():.2f}>"


_throttles: dict[str, AdaptiveThrottle] = {}


def reset_throttles() -> None:
    """Empty every process-wide throttle in place: policies keep theirs (tests)."""
    for throttle in list(_throttles.values()):
        throttle.reset()


def throttle_for(target: str) -> AdaptiveThrottle:
    """The process-wide throttle of ``target``, created on first use."""
    throttle = _throttles.get(target)
    if throttle is None:
        throttle = _throttles.setdefault(target, AdaptiveThrottle(target))
    return throttle
