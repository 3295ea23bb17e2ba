"""Where the fleet meets: process snapshots, operator commands, shared open markers.

Two implementations of one small protocol: :class:`RedisStore` (a redis-py
client) and :class:`CacheStore` (any Django cache, e.g. django-redis or a
file-based cache).  Only the fleet thread and operator tools call them, never a
request.

Commands are kept as "the latest command per breaker", each with its own
version number.  A process applies a breaker's command when that version
differs from the one it last applied, so two operators racing cannot hide one
command behind the other's version, and a process that starts later still
picks up a standing force-open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

__all__ = ["CacheStore", "FleetStore", "RedisStore"]


class FleetStore(Protocol):
    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None: ...
    def processes(self, ttl: float) -> list[dict[str, Any]]: ...
    def command_version(self) -> int: ...
    def commands(self) -> dict[str, dict[str, Any]]: ...
    def send_command(self, breaker: str, action: str) -> int: ...
    def set_open_until(self, breaker: str, until: float) -> None: ...
    def open_until(self, breakers: Sequence[str]) -> dict[str, float]: ...


def _key(name: str) -> str:
    # Breaker names are user text: keep keys free of spaces and control characters.
    return quote(name, safe="-_.:")


class RedisStore:
    """Fleet state in Redis, under ``prefix`` (all keys share one hash tag for Cluster)."""

    def __init__(self, client: Any, prefix: str = "resilience:fleet") -> None:
        self.client = client
        self.p = "{" + prefix + "}"

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(f"{self.p}:proc:{_key(proc)}", json.dumps(data), px=int(ttl * 1000))
        pipe.zadd(f"{self.p}:procs", {proc: now})
        pipe.zremrangebyscore(f"{self.p}:procs", "-inf", now - ttl)
        pipe.execute()

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        procs = self.client.zrangebyscore(f"{self.p}:procs", time.time() - ttl, "+inf")
        if not procs:
            return []
        names = [p.decode() if isinstance(p, bytes) else str(p) for p in procs]
        values = self.client.mget([f"{self.p}:proc:{_key(n)}" for n in names])
        return [json.loads(v) for v in values if v is not None]

    def command_version(self) -> int:
        return int(self.client.get(f"{self.p}:cmdver") or 0)

    def commands(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(f"{self.p}:cmds")
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()
        }

    def send_command(self, breaker: str, action: str) -> int:
        version = int(self.client.incr(f"{self.p}:cmdseq"))
        payload = json.dumps({"action": action, "version": version, "at": time.time()})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(f"{self.p}:cmds", breaker, payload)
        pipe.incr(f"{self.p}:cmdver")  # bumped after the command is readable
        pipe.execute()
        return version

    def set_open_until(self, breaker: str, until: float) -> None:
        ms = int((until - time.time()) * 1000)
        if ms > 0:
            self.client.set(f"{self.p}:open:{_key(breaker)}", repr(until), px=ms)

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        if not breakers:
            return {}
        values = self.client.mget([f"{self.p}:open:{_key(b)}" for b in breakers])
        return {b: float(v) for b, v in zip(breakers, values, strict=True) if v is not None}


class CacheStore:
    """Fleet state in a Django cache (cross-process only with a shared backend)."""

    def __init__(self, cache: Any, prefix: str = "resilience:fleet") -> None:
        self.cache = cache
        self.p = prefix

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        now = time.time()
        self.cache.set(f"{self.p}:proc:{_key(proc)}", dict(data), ttl)
        index_key = f"{self.p}:procs"
        index: dict[str, float] = self.cache.get(index_key) or {}
        # The index is read-modify-write (a cache has no sets): write it only when this
        # process is new or half-way to ageing out, so racing writers rarely collide,
        # and a lost entry is restored on the next publish.
        if now - index.get(proc, 0.0) > ttl / 2:
            index = {p: t for p, t in index.items() if now - t <= ttl}
            index[proc] = now
            self.cache.set(index_key, index, None)

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        now = time.time()
        index: dict[str, float] = self.cache.get(f"{self.p}:procs") or {}
        keys = [f"{self.p}:proc:{_key(p)}" for p, t in index.items() if now - t <= ttl * 1.5]
        found = self.cache.get_many(keys)
        return [found[k] for k in keys if k in found]

    def _commands(self) -> dict[str, Any]:
        value: dict[str, Any] = self.cache.get(f"{self.p}:cmds") or {"version": 0, "commands": {}}
        return value

    def command_version(self) -> int:
        return int(self._commands()["version"])

    def commands(self) -> dict[str, dict[str, Any]]:
        return dict(self._commands()["commands"])

    def send_command(self, breaker: str, action: str) -> int:
        state = self._commands()
        version = int(state["version"]) + 1
        state["commands"][breaker] = {"action": action, "version": version, "at": time.time()}
        state["version"] = version
        self.cache.set(f"{self.p}:cmds", state, None)
        return version

    def set_open_until(self, breaker: str, until: float) -> None:
        seconds = until - time.time()
        if seconds > 0:
            self.cache.set(f"{self.p}:open:{_key(breaker)}", until, seconds)

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        keys = {f"{self.p}:open:{_key(b)}": b for b in breakers}
        found = self.cache.get_many(list(keys))
        return {keys[k]: float(v) for k, v in found.items()}
