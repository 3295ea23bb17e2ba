"""Redis clients for the distributed limiter: sync and async, single node or cluster.

Connection settings come from ``RESILIENCE["REDIS"]``: either a django-redis
cache alias (``{"CACHE": "default"}``: its ``LOCATION`` and password are
reused) or a URL (``{"URL": "redis://...", "CLUSTER": True}``).  The limiter
builds its *own* pools from them rather than borrowing the cache's, because
its socket timeouts must be the latency budget: a cache pool configured with
no timeout would let one hung Redis hold a request for minutes.

redis-py retries failed commands by default (three times with backoff); the
limiter must not, since its fallback is the retry, so every client here is
built with retries off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..exceptions import ConfigError
from ..units import parse_duration

__all__ = [
    "AsyncClient",
    "RedisSettings",
    "SyncClient",
    "make_async_client",
    "make_sync_client",
    "parse_redis_settings",
]

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
AsyncClient: TypeAlias = "aredis.Redis | aredis.RedisCluster"

# Check id reported by the settings checks when RESILIENCE["REDIS"] is unusable.
CHECK_ID = "resilience.E040"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the distributed limiter's Redis is and how long to wait for it.

    ``socket_timeout`` and ``connect_timeout`` default to the latency budget
    (``FALLBACK_LATENCY``), so no Redis call blocks a request longer than that.
    """

    url: str
    cluster: bool = False
    password: str | None = None
    max_connections: int = 64
    socket_timeout: float = 0.05
    connect_timeout: float = 0.05
    key_prefix: str = "rl"


def parse_redis_settings(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """Turn ``RESILIENCE["REDIS"]`` into ``RedisSettings``; raise ``ConfigError`` if unusable.

    Reading a ``CACHE`` alias looks at Django's ``CACHES`` setting (not at the
    cache object), so it is cheap and can run inside a system check.
    """
    value = dict(value or {"CACHE": "default"})
    unknown = set(value) - {
        "CACHE",
        "URL",
        "CLUSTER",
        "PASSWORD",
        "MAX_CONNECTIONS",
        "SOCKET_TIMEOUT",
        "CONNECT_TIMEOUT",
        "KEY_PREFIX",
    }
    if unknown:
        raise ConfigError(
            f"RESILIENCE['REDIS'] has unknown keys {sorted(unknown)}",
            check_id=CHECK_ID,
            hint="Use CACHE or URL, and optionally CLUSTER, MAX_CONNECTIONS, "
            "SOCKET_TIMEOUT, CONNECT_TIMEOUT, KEY_PREFIX.",
        )
    url = value.get("URL")
    password = value.get("PASSWORD")
    if url is None:
        url, cache_password = _url_from_cache(str(value.get("CACHE", "default")))
        password = password or cache_password
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"RESILIENCE['REDIS'] URL {url!r} is not a Redis URL",
            check_id=CHECK_ID,
            hint="Write it like 'redis://127.0.0.1:6379/0'.",
        )
    try:
        socket_timeout = parse_duration(value.get("SOCKET_TIMEOUT", budget))
        connect_timeout = parse_duration(value.get("CONNECT_TIMEOUT", budget))
        max_connections = int(value.get("MAX_CONNECTIONS", 64))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"RESILIENCE['REDIS']: {exc}",
            check_id=CHECK_ID,
            hint="Timeouts are durations like '50ms'; MAX_CONNECTIONS is a positive integer.",
        ) from exc
    if max_connections < 1:
        raise ConfigError(
            "RESILIENCE['REDIS']['MAX_CONNECTIONS'] must be at least 1",
            check_id=CHECK_ID,
        )
    return RedisSettings(
        url=url,
        cluster=bool(value.get("CLUSTER", False)),
        password=password,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
        key_prefix=str(value.get("KEY_PREFIX", "rl")),
    )


def _url_from_cache(alias: str) -> tuple[str, str | None]:
    from django.conf import settings

    caches: Mapping[str, Any] = getattr(settings, "CACHES", {})
    cache = caches.get(alias)
    if cache is None:
        raise ConfigError(
            f"RESILIENCE['REDIS'] names cache {alias!r}, which is not in CACHES",
            check_id=CHECK_ID,
            hint="Name a django-redis cache alias, or give a URL instead.",
        )
    location = cache.get("LOCATION")
    # django-redis takes a list for primary/replicas; writes go to the first.
    if isinstance(location, list | tuple):
        location = location[0] if location else None
    if not isinstance(location, str) or "://" not in location:
        raise ConfigError(
            f"cache {alias!r} has no Redis URL in LOCATION ({location!r})",
            check_id=CHECK_ID,
            hint="Point RESILIENCE['REDIS'] at a django-redis cache or give a URL.",
        )
    options = cache.get("OPTIONS") or {}
    password = options.get("PASSWORD")
    return location, password if isinstance(password, str) else None


def _common_kwargs(settings: RedisSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if settings.password is not None:
        kwargs["password"] = settings.password
    return kwargs


def make_sync_client(settings: RedisSettings) -> SyncClient:
    """A redis-py client with the budget as socket timeouts and no retries."""
    kwargs = _common_kwargs(settings)
    if settings.cluster:
        # MOVED/ASK redirections are followed whatever the retry policy; the
        # zero-retry policy only stops a broken cluster multiplying the wait.
        return redis.RedisCluster.from_url(
            settings.url, max_connections=settings.max_connections, **kwargs
        )
    # from_url lets the client own its pool, so close() releases the sockets.
    return redis.Redis.from_url(settings.url, max_connections=settings.max_connections, **kwargs)


def make_async_client(settings: RedisSettings) -> AsyncClient:
    """A ``redis.asyncio`` client like ``make_sync_client``'s; bound to the loop that uses it."""
    kwargs = _common_kwargs(settings)
    if settings.cluster:
        return aredis.RedisCluster.from_url(
            settings.url, max_connections=settings.max_connections, **kwargs
        )
    return aredis.Redis.from_url(settings.url, max_connections=settings.max_connections, **kwargs)
