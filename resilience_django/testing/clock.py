"""A clock a test moves by hand, for limits, bulkheads, breakers and deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..clock import ManualClock, set_clock
from .reset import reset_state

__all__ = ["ManualClock", "use_clock"]


@contextmanager
def use_clock(clock: ManualClock | None = None) -> Iterator[ManualClock]:
    """Run the package on ``clock`` (a fresh :class:`ManualClock` if none) inside the block.

    Local limits, bulkheads, breakers, retry budgets and request deadlines
    read it instead of ``time.monotonic``; distributed limits keep Redis's
    clock.  The state is reset on the way in and out: times taken on one
    clock mean nothing on the other.

    >>> from resilience_django.testing import use_clock
    >>> with use_clock() as clock:
    ...     clock.advance(30)  # a breaker's open_for, a rate's window, a deadline
    """
    # Starting from the real reading keeps any time taken just before comparable.
    clock = clock if clock is not None else ManualClock(time.monotonic())
    previous = set_clock(clock)
    reset_state()
    try:
        yield clock
    finally:
        set_clock(previous)
        reset_state()
