"""The two settings the breakers read, re-read when Django's settings change.

Kept deliberately small: ``resilience_django.conf`` may take this over later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.signals import setting_changed

__all__ = ["breaker_settings", "fleet_settings", "on_change"]

_cache: dict[str, Mapping[str, Any]] = {}
_callbacks: list[Callable[[], None]] = []


def _resilience() -> Mapping[str, Any]:
    from django.conf import settings

    value = getattr(settings, "RESILIENCE", None) or {}
    return value if isinstance(value, Mapping) else {}


def breaker_settings() -> Mapping[str, Any]:
    """``RESILIENCE["BREAKERS"]``: breaker name -> its settings mapping."""
    value = _cache.get("BREAKERS")
    if value is None:
        raw = _resilience().get("BREAKERS") or {}
        value = _cache["BREAKERS"] = raw if isinstance(raw, Mapping) else {}
    return value


def fleet_settings() -> Mapping[str, Any]:
    """``RESILIENCE["FLEET"]`` plus the Redis URL from ``RESILIENCE["REDIS"]["URL"]``.

    FLEET keys: ``ENABLED`` (default True), ``URL`` (a Redis URL; defaults to
    REDIS.URL), ``CACHE`` (Django cache alias used when there is no URL,
    default ``"default"``), ``PREFIX`` (default ``"resilience:fleet"``), ``TTL``
    (seconds a silent process stays listed, default 10).
    """
    value = _cache.get("FLEET")
    if value is None:
        root = _resilience()
        fleet = root.get("FLEET") or {}
        redis = root.get("REDIS") or {}
        merged = dict(fleet) if isinstance(fleet, Mapping) else {}
        if "URL" not in merged and isinstance(redis, Mapping) and redis.get("URL"):
            merged["URL"] = redis["URL"]
        value = _cache["FLEET"] = merged
    return value


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` after ``RESILIENCE`` changes (``override_settings`` in tests)."""
    _callbacks.append(callback)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RESILIENCE":
        _cache.clear()
        for callback in list(_callbacks):
            callback()


setting_changed.connect(_setting_changed, dispatch_uid="resilience_django.breakers.settings")
