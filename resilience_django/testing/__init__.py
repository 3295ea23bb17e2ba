"""Helpers for your own tests: fresh state, no limits, a hand-moved clock, breaker states.

>>> from resilience_django.testing import (
...     ManualClock, ResilienceTestMixin, disable_limits, force_closed, force_open,
...     reset, trip, use_clock,
... )

pytest users register the fixtures (``resilience_reset``, ``resilience_clock``,
``resilience_disabled``) with ``pytest_plugins = ["resilience_django.testing.pytest_plugin"]``
in their ``conftest.py``.  See docs/testing.md.
"""

from __future__ import annotations

from .breakers import force_closed, force_open, trip
from .clock import ManualClock, use_clock
from .mixin import ResilienceTestMixin
from .reset import reset
from .switch import disable_limits

__all__ = [
    "ManualClock",
    "ResilienceTestMixin",
    "disable_limits",
    "force_closed",
    "force_open",
    "reset",
    "trip",
    "use_clock",
]
