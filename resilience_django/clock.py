"""The clock every time-based core takes, so tests can inject their own; hot paths read
:data:`source` itself (no frame per reading), which :func:`set_clock` replaces."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "monotonic", "set_clock", "source"]

Clock = Callable[[], float]
# The process clock's function (read it, never assign it: ``set_clock`` does).
source: Clock = time.monotonic


def monotonic() -> float:
    """Seconds on the process clock: ``time.monotonic()`` unless a test set another."""
    return source()


def set_clock(clock: Clock | None) -> Clock:
    """Make ``clock`` the process clock (``None``: ``time.monotonic``); returns the previous
    one.  Between tests, not while requests run: one clock's times mean nothing on another."""
    global source
    previous = source
    source = time.monotonic if clock is None else clock
    return previous


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
        if seconds < 0:
            # A monotonic clock never goes back; the cores assume it.
            raise ValueError("a monotonic clock cannot go back")
        self.now += seconds
