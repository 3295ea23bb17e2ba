"""Where the admin rules' version lives: the Django cache, or Redis with the Redis backend."""

from __future__ import annotations

from typing import Any, Protocol

from ..conf import get_settings

__all__ = ["VERSION_KEY", "CacheVersion", "RedisVersion", "VersionStore", "build_version_store"]

VERSION_KEY = "resilience:admin-rules:version"


class VersionStore(Protocol):
    def get(self) -> Any: ...
    def set(self, token: str) -> None: ...


class CacheVersion:
    """The version in a Django cache (it must be shared between processes)."""

    __slots__ = ("cache",)

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def get(self) -> Any:
        return self.cache.get(VERSION_KEY)

    def set(self, token: str) -> None:
        self.cache.set(VERSION_KEY, token, timeout=None)


class RedisVersion:
    """The version in the limiter's Redis."""

    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self) -> Any:
        value = self.client.get(VERSION_KEY)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, token: str) -> None:
        self.client.set(VERSION_KEY, token)


def build_version_store() -> VersionStore:
    """Redis when ``RESILIENCE["BACKEND"]`` is ``"redis"``, else the ``default`` cache."""
    settings = get_settings()
    if settings.backend == "redis":
        from ..limiting.redis_conn import make_sync_client, parse_redis_settings

        # Only the background thread and the admin read or write it, so a generous
        # timeout costs no request anything.
        return RedisVersion(make_sync_client(parse_redis_settings(settings.redis, budget=1.0)))
    from django.core.cache import caches

    return CacheVersion(caches["default"])
