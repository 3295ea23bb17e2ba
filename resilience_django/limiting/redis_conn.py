"""The one place that builds Redis clients: limiter, live reload and fleet use it.

Why the limiter builds its own pools for a cache alias, its timeouts, no retries:
docs/redis.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast
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

__all__ = ["AsyncClient", "RedisSettings", "SyncClient", "make_async_client",
           "make_sync_client", "make_sync_client_from_url", "parse_redis_settings"]  # fmt: skip

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
AsyncClient: TypeAlias = "aredis.Redis | aredis.RedisCluster"

# Check id reported by the settings checks when RESILIENCE["REDIS"] is unusable.
CHECK_ID = "resilience.E040"
# The connect budget: connecting and loading the script at first use.
CONNECT_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the distributed limiter's Redis is and how long to wait for it: the latency
    budget (``socket_timeout``) and the connect budget (docs/redis.md#cold-start)."""

    url: str
    cluster: bool = False
    password: str | None = None
    max_connections: int = 64
    socket_timeout: float = 0.05
    connect_timeout: float = CONNECT_TIMEOUT
    key_prefix: str = "rl"
    # Sentinel addresses; when set, ``url``'s host is the service name.
    sentinels: tuple[tuple[str, int], ...] = ()


_KEYS = frozenset(("URL", "CLUSTER", "PASSWORD", "MAX_CONNECTIONS", "SOCKET_TIMEOUT",
                   "CONNECT_TIMEOUT", "KEY_PREFIX", "SENTINELS"))  # fmt: skip


def _error(message: str, hint: str = "") -> ConfigError:
    return ConfigError(f"RESILIENCE['REDIS']{message}", check_id=CHECK_ID, hint=hint)


def parse_redis_settings(value: Mapping[str, Any] | None, *, budget: float) -> RedisSettings:
    """Turn a ``RESILIENCE["REDIS"]`` with a ``URL`` into ``RedisSettings``, or ``ConfigError``
    (``resilience_django.conf`` turns a ``CACHE`` alias into ``URL``, ``PASSWORD`` and so on)."""
    value = dict(value or {})
    unknown = set(value) - _KEYS
    if unknown:
        raise _error(
            f" has unknown keys {sorted(unknown)}",
            "Use CACHE or URL, and optionally CLUSTER, MAX_CONNECTIONS, "
            "SOCKET_TIMEOUT, CONNECT_TIMEOUT, KEY_PREFIX.",
        )
    url = value.get("URL")
    sentinels = value.get("SENTINELS") or ()
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise _error(
            f" URL {url!r} is not a Redis URL", "Write it like 'redis://127.0.0.1:6379/0'."
        )
    try:
        socket_timeout = parse_duration(value.get("SOCKET_TIMEOUT", budget))
        connect_timeout = parse_duration(value.get("CONNECT_TIMEOUT", CONNECT_TIMEOUT))
        max_connections = int(value.get("MAX_CONNECTIONS", 64))
    except (TypeError, ValueError) as exc:
        hint = "Timeouts are durations like '50ms'; MAX_CONNECTIONS is a positive integer."
        raise _error(f": {exc}", hint) from exc
    if max_connections < 1:
        raise _error("['MAX_CONNECTIONS'] must be at least 1")
    try:
        addresses = tuple((str(host), int(port)) for host, port in sentinels)
    except (TypeError, ValueError) as exc:
        raise _error(
            f"['SENTINELS'] = {sentinels!r} is not a list of (host, port)",
            "Write it like [('10.0.0.5', 26379), ('10.0.0.6', 26379)].",
        ) from exc
    cluster = bool(value.get("CLUSTER", False))
    # redis-py's RedisCluster refuses these only when built, which is at first use
    # (docs/redis.md#redis-cluster): said here, a mistake is a check error, not a
    # worker whose every decision fails over.
    if cluster and (
        url.startswith("unix://") or urlparse(url).path.strip("/") not in ("", "0") or addresses
    ):
        raise _error(
            f" URL {url!r} with CLUSTER: a cluster has no unix socket, no db but 0 and no "
            "SENTINELS",
            "Write it like 'redis://10.0.0.1:7000/0' (any node of the cluster).",
        )
    password = value.get("PASSWORD")
    return RedisSettings(
        sentinels=addresses,
        url=url,
        cluster=cluster,
        password=password if isinstance(password, str) else None,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
        key_prefix=str(value.get("KEY_PREFIX", "rl")),
    )


def _common_kwargs(settings: RedisSettings, *, asyncio: bool = False) -> dict[str, Any]:
    """Timeouts (docs/redis.md#cold-start), no retries, and the password."""
    read, connect = settings.socket_timeout, settings.connect_timeout
    kwargs: dict[str, Any] = {
        "socket_timeout": max(read, connect) if asyncio else read,
        "socket_connect_timeout": connect if asyncio else min(read, connect),
        # redis.asyncio clients take redis.asyncio.retry.Retry; redis-py 8 warns when
        # they are given the sync one (and a later release may refuse it).
        "retry": AsyncRetry(NoBackoff(), 0) if asyncio else Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if settings.password is not None:
        kwargs["password"] = settings.password
    return kwargs


def _make_client(settings: RedisSettings, *, asyncio: bool) -> Any:
    # redis and redis.asyncio build their clients with the same names and arguments.
    lib, sentinels = (aredis, asentinel) if asyncio else (redis, sentinel)
    kwargs = _common_kwargs(settings, asyncio=asyncio)
    if settings.sentinels:
        timeouts = {key: kwargs[key] for key in ("socket_timeout", "socket_connect_timeout")}
        watcher = sentinels.Sentinel(list(settings.sentinels), sentinel_kwargs=timeouts)
        # The URL's host is the service name; master_for takes no URL, so what else
        # it says about the primary (db, TLS, ACL user, password) is passed one by one.
        parsed = urlparse(settings.url)
        db = parsed.path.strip("/")
        if parsed.username:
            kwargs["username"] = unquote(parsed.username)
        if parsed.password and "password" not in kwargs:
            kwargs["password"] = unquote(parsed.password)
        if parsed.scheme == "rediss":
            kwargs["ssl"] = True
        return watcher.master_for(
            parsed.hostname or "mymaster",
            db=int(db) if db.isdigit() else 0,
            max_connections=settings.max_connections,
            **kwargs,
        )
    # MOVED/ASK redirections are followed whatever the retry policy; the
    # zero-retry policy only stops a broken cluster multiplying the wait.
    # from_url lets the client own its pool, so close() releases the sockets.
    client_class = lib.RedisCluster if settings.cluster else lib.Redis
    return client_class.from_url(settings.url, max_connections=settings.max_connections, **kwargs)


def make_sync_client(settings: RedisSettings) -> SyncClient:
    """A redis-py client with the budget as socket timeouts and no retries."""
    return cast("SyncClient", _make_client(settings, asyncio=False))


def make_async_client(settings: RedisSettings) -> AsyncClient:
    """A ``redis.asyncio`` client like ``make_sync_client``'s; bound to the loop that uses it."""
    return cast("AsyncClient", _make_client(settings, asyncio=True))


def make_sync_client_from_url(url: str, timeout: float = 1.0) -> redis.Redis:
    """A plain redis-py client for background work (fleet snapshots, live reload), ``timeout``
    bounding connects, reads and writes, no retries.  To follow ``RESILIENCE["REDIS"]`` (cache
    alias, Sentinel, Cluster): ``make_sync_client(parse_redis_settings(value, budget=timeout))``.
    """
    settings = RedisSettings(url, socket_timeout=timeout, connect_timeout=timeout)
    return redis.Redis.from_url(url, **_common_kwargs(settings))
