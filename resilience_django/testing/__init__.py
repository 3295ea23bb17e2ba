"""Helpers for your own tests: fresh state, no limits, a hand-moved clock, breaker states;
pytest fixtures in ``resilience_django.testing.pytest_plugin`` (docs/testing.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..breakers.registry import get_breaker
from ..breakers.state import Breaker
from ..clock import ManualClock, monotonic, set_clock
from .reset import reset, reset_state
from .switch import disable_limits

__all__ = [
    "ManualClock", "ResilienceTestMixin", "disable_limits", "force_closed", "force_open", "reset",
    "trip", "use_clock",
]  # fmt: skip


def force_open(name: str) -> Breaker:
    """Hold the breaker open, as an operator's force-open does, until ``force_closed``/reset."""
    breaker = get_breaker(name)
    breaker.force_open("forced open by a test")
    return breaker


def force_closed(name: str) -> Breaker:
    """Close the breaker with empty statistics (the operator's force-close)."""
    breaker = get_breaker(name)
    breaker.force_close("closed by a test")
    return breaker


def trip(name: str) -> Breaker:
    """Open the breaker as a run of failures would, for its policy's ``open_for``: unlike
    ``force_open``, time (a ``use_clock`` clock) moves it on to half-open."""
    breaker = get_breaker(name)
    breaker.reset("reset by a test before tripping")
    breaker.open_until(monotonic() + breaker.policy.open_for, "tripped by a test")
    if breaker.state != "open":
        raise ValueError(
            f"breaker {name!r} cannot trip: its mode is {breaker.policy.mode!r}, not 'normal'"
        )
    return breaker


@contextmanager
def use_clock(clock: ManualClock | None = None) -> Iterator[ManualClock]:
    """Run the package on ``clock`` (a fresh :class:`ManualClock` if none) inside the block;
    distributed limits keep Redis's clock.  The state is reset on the way in and out: times
    taken on one clock mean nothing on the other.

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


class ResilienceTestMixin:
    """``reset()`` before each test: ``class OrderTests(ResilienceTestMixin, TestCase)``, first
    so its ``setUp`` runs first.  A class-level ``override_settings`` is applied once per class:
    without the mixin a test inherits the quota the previous test of the class spent."""

    def setUp(self) -> None:
        reset()
        getattr(super(), "setUp", lambda: None)()  # a mixin: the TestCase's setUp, if any
