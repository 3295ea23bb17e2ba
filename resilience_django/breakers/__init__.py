"""Circuit breakers: a framework-free state machine, windows, events and a registry.

Nothing here imports Django (the import-linter contract in ``pyproject.toml``
checks it).  Policies from settings and the admin, the ``breaker_state_changed``
signal and the fleet are handed to the registry by ``resilience_django.wiring``.
"""

from __future__ import annotations

from .api import BreakerGuard, breaker
from .events import Transition
from .policy import BreakerPolicy, parse_breaker_policy
from .registry import all_breakers, get_breaker
from .state import Breaker, CircuitOpen

__all__ = ["Breaker", "BreakerGuard", "BreakerPolicy", "CircuitOpen", "Transition",
           "all_breakers", "breaker", "get_breaker", "parse_breaker_policy"]  # fmt: skip
