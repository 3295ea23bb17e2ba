"""Which fleet store a deployment uses, chosen once per settings (docs/settings.md, ``FLEET``)."""

from __future__ import annotations

import functools
import os
import threading

from ..conf import ResilienceSettings, get_settings, on_reload, parse_redis
from .base import FleetStore

__all__ = ["choose", "get_store", "per_process_cache", "reset"]

# The choice with no Redis and a per-process cache (the test suite pins "cache", so
# that background threads of in-process tests do not write to the test database).
FALLBACK = "database"

_lock = threading.Lock()
_store: FleetStore | None = None


def per_process_cache(alias: str) -> bool:
    """Whether the cache ``alias`` lives in each process (so it cannot carry the fleet)."""
    from django.conf import settings

    backend = str(getattr(settings, "CACHES", {}).get(alias, {}).get("BACKEND", ""))
    return backend.rsplit(".", 1)[-1] in ("LocMemCache", "DummyCache")


def choose(settings: ResilienceSettings | None = None) -> str:
    """``"redis"``, ``"cache"`` or ``"database"``: the store these settings use."""
    settings = settings or get_settings()
    forced = settings.fleet.store
    if forced is not None:
        return forced
    redis = settings.redis
    if settings.fleet.url or redis.get("URL") or (settings.backend == "redis" and redis):
        return "redis"
    return FALLBACK if per_process_cache(settings.fleet.cache) else "cache"


def build() -> FleetStore:
    """A new store for the current settings (no I/O: connections open on first use)."""
    settings = get_settings()
    kind = choose(settings)
    prefix = settings.fleet.prefix
    if kind == "redis":
        from ..limiting.redis_conn import make_sync_client, make_sync_client_from_url
        from .redis import RedisStore

        # Only background threads and operator tools use it: a generous timeout costs no
        # request anything.  Built at first use (RedisStore, docs/redis.md#redis-cluster).
        if url := settings.fleet.url:
            return RedisStore(prefix=prefix, connect=lambda: make_sync_client_from_url(url, 1.0))
        parsed = parse_redis(settings.redis, budget=1.0)  # bad settings raise here, at once
        return RedisStore(prefix=prefix, connect=lambda: make_sync_client(parsed))
    if kind == "cache":
        from django.conf import settings as django_settings
        from django.core.cache import caches
        from django.core.cache.backends.filebased import FileBasedCache

        from .cache import CacheStore, file_lock

        alias = settings.fleet.cache
        cache = caches[alias]
        if not isinstance(cache, FileBasedCache):  # add() is atomic: no lock needed
            return CacheStore(cache, prefix)
        # Its add() is check-then-write: serialize senders with a lock beside the cache
        # files (the cache's own clear and cull only touch *.djcache files).
        location = os.path.abspath(str(django_settings.CACHES[alias]["LOCATION"]))
        lock = os.path.join(location, "resilience-fleet-commands.lock")
        return CacheStore(cache, prefix, lock=functools.partial(file_lock, lock))
    from .database import DatabaseStore

    return DatabaseStore()


def get_store() -> FleetStore:
    """This process's store for the current settings (built once; raises on bad settings)."""
    global _store
    with _lock:  # callers are background threads and operator tools, never a request
        if _store is None:
            _store = build()
        return _store


def reset() -> None:
    """Forget the store (settings changed, a fork); the next :func:`get_store` builds anew."""
    global _store
    _store = None


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # fork may have caught it held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
on_reload(reset)
