"""What every outbound transport does with the deadline, written once."""

from __future__ import annotations

from ..conf import get_settings
from ..deadline import DeadlineExceeded, _current

__all__ = ["TIMEOUT_HEADER", "outbound_budget"]

TIMEOUT_HEADER = "X-Timeout-Ms"


def outbound_budget(margin: float | None = None) -> tuple[float, int] | None:
    """``(seconds left for the call, ms to announce downstream)`` or ``None`` outside a deadline.

    Raises ``DeadlineExceeded`` when nothing is left, so no call starts that
    cannot finish in time.
    """
    deadline = _current.get()
    if deadline is None:
        return None
    left = deadline.remaining()
    if margin is None:
        margin = get_settings().deadline.outbound_margin
    announce = int((left - margin) * 1000)
    if left <= 0 or announce <= 0:
        raise DeadlineExceeded(
            f"deadline of {deadline.budget:.3f}s for {deadline.route} spent before an outbound call"
        )
    return left, announce
