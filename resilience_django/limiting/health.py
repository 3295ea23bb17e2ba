"""Where the management command and the dashboard find the limiter backend's health: the
limiter in force registers here (``HybridLimiter``); with none, decisions are local (healthy).

>>> from resilience_django.limiting import health as h
>>> h.register(None); h.health()["backend"]
'local'
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["HasHealth", "health", "register", "unregister"]


class HasHealth(Protocol):
    def health(self) -> dict[str, Any]: ...


# One store replaces it whole: readers need no lock.
_active: HasHealth | None = None

_LOCAL = {"backend": "local", "healthy": True, "fallback_active": False,
          "last_latency_ms": None, "live_instances": None}  # fmt: skip


def register(limiter: HasHealth | None) -> None:
    """Make ``limiter`` the one ``health()`` reports on (``None``: local only)."""
    global _active
    _active = limiter


def unregister(limiter: HasHealth) -> None:
    """``limiter`` is closed: stop reporting on it (if it is the one reported on)."""
    global _active
    if _active is limiter:
        _active = None


def health() -> dict[str, Any]:
    """The limiter backend's health: ``backend``, ``healthy``, ``fallback_active``,
    ``last_latency_ms``, ``live_instances`` and, for Redis, a few more details."""
    limiter = _active
    return dict(_LOCAL) if limiter is None else limiter.health()
