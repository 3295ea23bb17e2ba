"""Put every piece of process state the package keeps back to a fresh start (not Redis:
docs/testing.md)."""

from __future__ import annotations

__all__ = ["reset", "reset_state"]


def reset_state() -> None:
    """Forget counts, slots, breaker states and budgets; the settings stay parsed.  Called on
    ``setting_changed`` for ``RESILIENCE``: ``override_settings`` starts from nothing too."""
    from ..breakers.registry import registry
    from ..observability.recent import deadlines, rejections
    from ..retrying.budget import budgets
    from ..retrying.throttle import reset_throttles
    from ..runtime import discard_stores

    discard_stores()
    # In place: decorators and retry policies hold the objects themselves.
    registry.reset_all("reset by resilience_django.testing")
    budgets.reset_all()
    reset_throttles()
    rejections.clear()
    deadlines.clear()


def reset() -> None:
    """Every limiter, bulkhead, breaker, retry budget and throttle of this process, fresh;
    also the parsed settings and the admin rules loaded last (the next request reads both
    again), and ``@limit``'s limiter."""
    from ..conf import reset_settings

    reset_settings()
    reset_state()
