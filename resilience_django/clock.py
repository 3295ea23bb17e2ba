"""The clock every time-based core takes, so tests can inject their own."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "monotonic"]

Clock = Callable[[], float]
monotonic: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to; for tests and simulations.

    >>> clock = ManualClock(); clock.advance(1.5); clock()
    1.5
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
