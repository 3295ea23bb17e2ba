"""Where the management command and the dashboard find the limiter backend's health.

The limiter in force registers itself here when it is built (the
``HybridLimiter`` does so on its own); ``health()`` then asks it.  With no
distributed limiter registered the process decides locally, which is always
healthy.

>>> from resilience_django.limiting import health as h
>>> h.register(None); h.health()["backend"]
'local'
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

__all__ = ["HasHealth", "active", "health", "register"]


class HasHealth(Protocol):
    def health(self) -> dict[str, Any]: ...


_lock = threading.Lock()
_active: HasHealth | None = None

_LOCAL = {
    "backend": "local",
    "healthy": True,
    "fallback_active": False,
    "last_latency_ms": None,
    "live_instances": None,
}


def register(limiter: HasHealth | None) -> None:
    """Make ``limiter`` the one ``health()`` reports on (``None``: local only)."""
    global _active
    with _lock:
        _active = limiter


def active() -> HasHealth | None:
    """The registered limiter, if any."""
    return _active


def health() -> dict[str, Any]:
    """The limiter backend's health: ``backend``, ``healthy``, ``fallback_active``,
    ``last_latency_ms``, ``live_instances`` and, for Redis, a few more details."""
    limiter = _active
    if limiter is None:
        return dict(_LOCAL)
    return limiter.health()
