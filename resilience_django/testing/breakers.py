"""Put a breaker in the state a test needs, without failing calls to get it there."""

from __future__ import annotations

from ..breakers.registry import get_breaker
from ..breakers.state import Breaker
from ..clock import monotonic

__all__ = ["force_closed", "force_open", "trip"]


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
    """Open the breaker as a run of failures would: for its policy's ``open_for``.

    Unlike ``force_open``, time moves it on: after ``open_for`` (advance a
    ``use_clock`` clock) it lets trial calls through, half-open.
    """
    breaker = get_breaker(name)
    breaker.reset("reset by a test before tripping")
    breaker.open_until(monotonic() + breaker.policy.open_for, "tripped by a test")
    if breaker.state != "open":
        raise ValueError(
            f"breaker {name!r} cannot trip: its mode is {breaker.policy.mode!r}, not 'normal'"
        )
    return breaker
