"""Circuit breakers: a framework-free state machine, a registry, and fleet visibility.

The core (``policy``, ``window``, ``state``, ``events``) imports nothing from
Django; the names that need Django (the registry reads settings) are loaded on
first access, so ``from resilience_django.breakers.state import Breaker`` stays
framework-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .events import Transition
from .policy import BreakerPolicy, parse_breaker_policy
from .state import Breaker, CircuitOpen

if TYPE_CHECKING:
    from .api import BreakerGuard, breaker
    from .registry import all_breakers, get_breaker

__all__ = [
    "Breaker",
    "BreakerGuard",
    "BreakerPolicy",
    "CircuitOpen",
    "Transition",
    "all_breakers",
    "breaker",
    "get_breaker",
    "parse_breaker_policy",
]

_LAZY = {
    "BreakerGuard": ".api",
    "breaker": ".api",
    "all_breakers": ".registry",
    "get_breaker": ".registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
