"""resilience_django: deadlines, limits, breakers, shedding and retries for Django.

The public names are imported lazily, so ``import resilience_django`` stays cheap and never
touches Django settings."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "ALL",
    "UNSAFE",
    "CircuitOpen",
    "DeadlineExceeded",
    "aget_usage",
    "ais_ratelimited",
    "breaker",
    "deadline",
    "get_usage",
    "is_ratelimited",
    "limit",
    "retry",
]

# name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "deadline": (".deadline", None),
    "DeadlineExceeded": (".deadline", "DeadlineExceeded"),
    "limit": (".view_limits.decorator", "limit"),
    # django-ratelimit's vocabulary (docs/migrating-from-django-ratelimit.md).
    "ALL": (".view_limits.compat", "ALL"),
    "UNSAFE": (".view_limits.compat", "UNSAFE"),
    "is_ratelimited": (".view_limits.compat", "is_ratelimited"),
    "ais_ratelimited": (".view_limits.compat", "ais_ratelimited"),
    "get_usage": (".view_limits.compat", "get_usage"),
    "aget_usage": (".view_limits.compat", "aget_usage"),
    "breaker": (".breakers.api", "breaker"),
    "CircuitOpen": (".breakers.state", "CircuitOpen"),
    "retry": (".retrying", "retry"),
}

if TYPE_CHECKING:  # pragma: no cover - what the lazy names are, for type checkers
    from . import deadline as deadline
    from .breakers.api import breaker as breaker
    from .breakers.state import CircuitOpen as CircuitOpen
    from .deadline import DeadlineExceeded as DeadlineExceeded
    from .retrying import retry as retry
    from .view_limits.compat import ALL as ALL
    from .view_limits.compat import UNSAFE as UNSAFE
    from .view_limits.compat import aget_usage as aget_usage
    from .view_limits.compat import ais_ratelimited as ais_ratelimited
    from .view_limits.compat import get_usage as get_usage
    from .view_limits.compat import is_ratelimited as is_ratelimited
    from .view_limits.decorator import limit as limit


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'resilience_django' has no attribute {name!r}") from None
    module = import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
