"""Circuit breakers: a state machine, windows, events and a registry, with no Django import;
``wiring.py`` hands the registry its policies, the signal and the fleet (docs/architecture.md)."""

from __future__ import annotations

from .api import BreakerGuard, breaker
from .events import Transition
from .policy import BreakerPolicy, parse_breaker_policy
from .registry import all_breakers, get_breaker
from .state import Breaker, CircuitOpen

__all__ = ["Breaker", "BreakerGuard", "BreakerPolicy", "CircuitOpen", "Transition",
           "all_breakers", "breaker", "get_breaker", "parse_breaker_policy"]  # fmt: skip
