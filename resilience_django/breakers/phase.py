"""Breaker states, ``CircuitOpen``, and ``Phase``: one state between two transitions."""

from __future__ import annotations

from ..exceptions import ResilienceError
from .window import OutcomeWindow

__all__ = [
    "BASE",
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "MEASURING",
    "METRICS_ONLY",
    "OPEN",
    "CircuitOpen",
    "Phase",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
FORCED_OPEN = "forced_open"
DISABLED = "disabled"
METRICS_ONLY = "metrics_only"
MEASURING = frozenset({CLOSED, DISABLED, METRICS_ONLY})
BASE = {"normal": CLOSED, "disabled": DISABLED, "metrics_only": METRICS_ONLY}


class CircuitOpen(ResilienceError):
    """The breaker rejected the call; ``retry_after`` is in seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry after {retry_after:.3f}s")
        self.name = name
        self.retry_after = max(0.0, retry_after)


class Phase:
    """One state of a breaker between two transitions; also the token of a call."""

    __slots__ = (
        "admitted",
        "consecutive",
        "counted_at",
        "entered",
        "failed",
        "free",
        "gen",
        "state",
        "succeeded",
        "until",
        "window",
    )

    def __init__(
        self, state: str, gen: int, window: OutcomeWindow, entered: float, until: float
    ) -> None:
        self.state = state
        self.gen = gen
        self.free = state in MEASURING  # admitted without a lock
        self.window = window
        self.entered = entered
        self.until = until
        self.consecutive = 0
        # When the last failure counted (``BreakerPolicy.stall_counts_once``).
        self.counted_at = float("-inf")
        self.admitted = 0
        self.succeeded = 0
        self.failed = 0
