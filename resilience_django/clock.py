"""The clock every time-based core takes, so tests can inject their own.

Cores take a ``clock`` argument (``Breaker(clock=...)``, ``LocalLimiter(clock=...)``);
its default is :func:`monotonic`, the process clock.  The process clock is
``time.monotonic`` unless a test installs another with :func:`set_clock`
(``resilience_django.testing.use_clock`` does, and resets the state kept in the
old clock's time), so the parts the package builds itself (the middleware's
limiters, bulkheads, breakers and deadlines) follow a test's clock without
anything patching ``time.monotonic`` for the whole process.

Hot paths do not call :func:`monotonic` (a Python frame on every reading):
they read :data:`source`, the process clock's function itself, once per
request or per object (``clock.source()``, or ``Deadline`` binding it when
built), and call that.  ``set_clock`` is for between tests, so a request or
a deadline never sees the clock change under it.
"""

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
    """Make ``clock`` the process clock (``None``: ``time.monotonic``); returns the previous one.

    Meant for tests: components compare times taken before and after the
    change, so call it between tests (``resilience_django.testing.use_clock``
    resets them around it), not while requests are running.
    """
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
