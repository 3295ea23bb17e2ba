"""The one place that builds Redis clients: limiter, live reload and fleet use it.

Connection settings come from ``RESILIENCE["REDIS"]``: either a django-redis
cache alias (``{"CACHE": "default"}``: its ``LOCATION``, password and
Sentinel addresses are reused; ``resilience_django.conf`` reads them from
``CACHES``, so this module knows nothing of Django) or a URL (``{"URL": "redis://...", "CLUSTER":
True}``; ``rediss://`` for TLS, ``redis://user:password@host`` for an ACL user,
``unix://`` for a socket).  For a cache alias the limiter builds its *own*
pools from the cache's settings rather than borrowing django-redis's
(``django_redis.get_redis_connection``): the limiter's socket timeouts must
be the latency budget, and a cache pool configured with no timeout (the
django-redis default) would let one hung Redis hold a request for minutes.

Timeouts (see ``docs/redis.md``):

- sync clients read, write *and connect* within ``socket_timeout`` (the
  latency budget, ``FALLBACK_LATENCY``): a sync socket has one connect
  timeout, and a decision may have to open a connection, so a larger one
  would let a host that drops SYNs hold a request past the budget;
- async clients connect within ``connect_timeout`` (``CONNECT_TIMEOUT``,
  default 1 s, the *connect budget*) and use it as their socket timeout too,
  as a backstop only: the per-decision bound is the limiter's own,
  loop-lag-aware one (``RedisLimiter``), which redis-py's timer-based socket
  timeout is not (a reply read late by a busy loop would time out).  The
  limiter connects and loads its script at first use on each loop, under the
  connect budget, before the first decision there.

redis-py retries failed commands by default (three times with backoff); the
limiter must not, since its fallback is the retry, so every client here is
built with retries off.

Sentinel: a django-redis cache set up for Sentinel (``OPTIONS["SENTINELS"]``
and a ``LOCATION`` such as ``redis://mymaster/0``) is followed: the limiter
asks the same sentinels for the current primary of that service.  Without a
cache alias, give ``{"URL": "redis://mymaster/0", "SENTINELS": [("10.0.0.5",
26379), ...]}``.  Decisions always go to the primary (they write).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel as sentinel
from redis.asyncio.retry import Retry as AsyncRetry
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
    "make_sync_client_from_url",
    "parse_redis_settings",
]

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
AsyncClient: TypeAlias = "aredis.Redis | aredis.RedisCluster"

# Check id reported by the settings checks when RESILIENCE["REDIS"] is unusable.
CHECK_ID = "resilience.E040"
# The connect budget: connecting and loading the script at first use.
CONNECT_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the distributed limiter's Redis is and how long to wait for it.

    ``socket_timeout`` defaults to the latency budget (``FALLBACK_LATENCY``),
    so no Redis call blocks a request longer than that; ``connect_timeout``
    (default 1 s) is the connect budget of the first use on an event loop
    (see the module docstring for how sync and async clients use them).
    """

    url: str
    cluster: bool = False
    password: str | None = None
    max_connections: int = 64
    socket_timeout: float = 0.05
    connect_timeout: float = CONNECT_TIMEOUT
    key_prefix: str = "rl"
    # Sentinel addresses; when set, ``url``'s host is the service name.
    sentinels: tuple[tuple[str, int], ...] = ()


def parse_redis_settings(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """Turn a ``RESILIENCE["REDIS"]`` with a ``URL`` into ``RedisSettings``, or ``ConfigError``.

    A ``CACHE`` alias is Django's business: ``resilience_django.conf`` reads
    that cache's ``LOCATION``, password and Sentinel addresses from ``CACHES``
    and hands them over here as ``URL``, ``PASSWORD`` and ``SENTINELS``.
    """
    value = dict(value or {})
    unknown = set(value) - {
        "URL",
        "CLUSTER",
        "PASSWORD",
        "MAX_CONNECTIONS",
        "SOCKET_TIMEOUT",
        "CONNECT_TIMEOUT",
        "KEY_PREFIX",
        "SENTINELS",
    }
    if unknown:
        raise ConfigError(
            f"RESILIENCE['REDIS'] has unknown keys {sorted(unknown)}",
            check_id=CHECK_ID,
            hint="Use CACHE or URL, and optionally CLUSTER, MAX_CONNECTIONS, "
            "SOCKET_TIMEOUT, CONNECT_TIMEOUT, KEY_PREFIX.",
        )
    url = value.get("URL")
    sentinels = value.get("SENTINELS") or ()
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"RESILIENCE['REDIS'] URL {url!r} is not a Redis URL",
            check_id=CHECK_ID,
            hint="Write it like 'redis://127.0.0.1:6379/0'.",
        )
    try:
        socket_timeout = parse_duration(value.get("SOCKET_TIMEOUT", budget))
        connect_timeout = parse_duration(value.get("CONNECT_TIMEOUT", CONNECT_TIMEOUT))
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
    try:
        addresses = tuple((str(host), int(port)) for host, port in sentinels)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"RESILIENCE['REDIS']['SENTINELS'] = {sentinels!r} is not a list of (host, port)",
            check_id=CHECK_ID,
            hint="Write it like [('10.0.0.5', 26379), ('10.0.0.6', 26379)].",
        ) from exc
    password = value.get("PASSWORD")
    return RedisSettings(
        sentinels=addresses,
        url=url,
        cluster=bool(value.get("CLUSTER", False)),
        password=password if isinstance(password, str) else None,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
        key_prefix=str(value.get("KEY_PREFIX", "rl")),
    )


def _timeouts(settings: RedisSettings, *, asyncio: bool) -> tuple[float, float]:
    """(socket timeout, connect timeout) of a client; see the module docstring."""
    if asyncio:
        backstop = max(settings.socket_timeout, settings.connect_timeout)
        return backstop, settings.connect_timeout
    return settings.socket_timeout, min(settings.socket_timeout, settings.connect_timeout)


def _common_kwargs(settings: RedisSettings, *, asyncio: bool = False) -> dict[str, Any]:
    # redis.asyncio clients take redis.asyncio.retry.Retry; redis-py 8 warns when
    # they are given the sync one (and a later release may refuse it).
    retry = AsyncRetry(NoBackoff(), 0) if asyncio else Retry(NoBackoff(), 0)
    socket_timeout, connect_timeout = _timeouts(settings, asyncio=asyncio)
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": retry,
        "health_check_interval": 0,
    }
    if settings.password is not None:
        kwargs["password"] = settings.password
    return kwargs


def _service(settings: RedisSettings) -> tuple[str, int]:
    parsed = urlparse(settings.url)
    db = parsed.path.strip("/")
    return parsed.hostname or "mymaster", int(db) if db.isdigit() else 0


def _primary_kwargs(settings: RedisSettings, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a Sentinel primary's URL says beyond the service name: TLS, ACL user, password.

    ``master_for`` takes no URL, so these would otherwise be dropped.
    """
    parsed = urlparse(settings.url)
    kwargs = dict(kwargs)
    if parsed.username:
        kwargs["username"] = unquote(parsed.username)
    if parsed.password and "password" not in kwargs:
        kwargs["password"] = unquote(parsed.password)
    if parsed.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs


def make_sync_client(settings: RedisSettings) -> SyncClient:
    """A redis-py client with the budget as socket timeouts and no retries."""
    kwargs = _common_kwargs(settings)
    if settings.sentinels:
        service, db = _service(settings)
        timeouts = {"socket_timeout": kwargs["socket_timeout"],
                    "socket_connect_timeout": kwargs["socket_connect_timeout"]}  # fmt: skip
        watcher = sentinel.Sentinel(list(settings.sentinels), sentinel_kwargs=timeouts)
        primary: redis.Redis = watcher.master_for(
            service,
            db=db,
            max_connections=settings.max_connections,
            **_primary_kwargs(settings, kwargs),
        )
        return primary
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
    kwargs = _common_kwargs(settings, asyncio=True)
    if settings.sentinels:
        service, db = _service(settings)
        timeouts = {"socket_timeout": kwargs["socket_timeout"],
                    "socket_connect_timeout": kwargs["socket_connect_timeout"]}  # fmt: skip
        awatcher = asentinel.Sentinel(list(settings.sentinels), sentinel_kwargs=timeouts)
        aprimary: aredis.Redis = awatcher.master_for(
            service,
            db=db,
            max_connections=settings.max_connections,
            **_primary_kwargs(settings, kwargs),
        )
        return aprimary
    if settings.cluster:
        return aredis.RedisCluster.from_url(
            settings.url, max_connections=settings.max_connections, **kwargs
        )
    return aredis.Redis.from_url(settings.url, max_connections=settings.max_connections, **kwargs)


def make_sync_client_from_url(url: str, timeout: float = 1.0) -> redis.Redis:
    """A plain redis-py client for background work (fleet snapshots, live reload).

    ``timeout`` bounds connects, reads and writes; no retries.  For a client
    that follows ``RESILIENCE["REDIS"]`` (cache alias, Sentinel, Cluster,
    password) use ``make_sync_client(parse_redis_settings(value, budget=timeout))``.
    """
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return client
