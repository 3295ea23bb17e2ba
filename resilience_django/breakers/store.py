"""Where the fleet meets: process snapshots, operator commands, shared open markers.

Two implementations of one small protocol: :class:`RedisStore` (a redis-py
client) and :class:`CacheStore` (any Django cache, e.g. django-redis or a
file-based cache).  Only the fleet thread and operator tools call them, never a
request.

Operator commands are a **log**.  Each command takes the next number of one
sequence and gets an entry of its own, so two operators acting at once get two
numbers and neither command overwrites the other; every process applies the
log in sequence order, so everywhere the command in force is the last one by
number.  Next to the log, each breaker's *standing* command (its latest) lets a
process that starts later, or fell behind the log's retention, begin there.

* Redis: one Lua script numbers the command (``INCR``), appends it to the log
  (a sorted set keeping the newest :data:`COMMAND_LOG`) and sets the standing
  command, all atomically.
* Django cache: a sender claims number ``n`` with ``cache.add("cmd:<n>")`` and
  tries ``n + 1`` when it is taken.  ``add`` is atomic in Django's Redis,
  Memcached, database and local-memory caches (and django-redis); the
  file-based cache's ``add`` is check-then-write, so with it the senders take a
  file lock in the cache's directory (:class:`FileLock`).  Entries expire after
  :data:`COMMAND_TTL`; the standing map is a checkpoint that readers write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

__all__ = [
    "COMMAND_LOG",
    "COMMAND_TTL",
    "CacheStore",
    "CommandBatch",
    "FileLock",
    "FleetStore",
    "RedisStore",
]

logger = logging.getLogger("resilience_django.breakers")

COMMAND_LOG = 10_000
"""Commands the Redis log keeps (the newest); a reader further behind starts over from the
standing commands."""
COMMAND_TTL = 86_400
"""Seconds a command stays in a Django-cache log; a reader further behind starts over from
the standing commands."""
READ_BATCH = 500
_PROBE = 4  # log entries read along with the head in the steady-state poll


class CommandBatch(NamedTuple):
    """What a reader gets from :meth:`FleetStore.read_commands`.

    ``standing``: when not ``None``, the reader starts over from it (breaker ->
    its latest command, as of some number before ``log``).  ``log``: the
    commands to apply next, in sequence order.  ``seen``: the number to pass as
    ``after`` next time.  ``stale``: the store's standing map is older than
    ``seen``, so the reader should save its own (:meth:`FleetStore.save_standing`).
    """

    standing: dict[str, dict[str, Any]] | None
    log: list[dict[str, Any]]
    seen: int
    stale: bool = False


class FleetStore(Protocol):
    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None: ...
    def processes(self, ttl: float) -> list[dict[str, Any]]: ...
    def send_command(self, breaker: str, action: str) -> int: ...
    def read_commands(self, after: int | None) -> CommandBatch: ...
    def save_standing(self, seen: int, standing: Mapping[str, Mapping[str, Any]]) -> None: ...
    def set_open_until(self, breaker: str, until: float) -> None: ...
    def open_until(self, breakers: Sequence[str]) -> dict[str, float]: ...


def command_seq(command: Mapping[str, Any]) -> int:
    try:
        return int(command.get("seq", 0))
    except (TypeError, ValueError):
        return 0


def _key(name: str) -> str:
    # Breaker names are user text: keep keys free of spaces and control characters.
    return quote(name, safe="-_.:")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """Fleet state in Redis, under ``prefix`` (all keys share one hash tag for Cluster)."""

    def __init__(self, client: Any, prefix: str = "resilience:fleet") -> None:
        self.client = client
        self.p = "{" + prefix + "}"
        source = resources.files("resilience_django").joinpath("lua", "fleet_command.lua")
        self._send = client.register_script(source.read_text(encoding="utf-8"))
        self._cmd_keys = [f"{self.p}:cmd:seq", f"{self.p}:cmd:log", f"{self.p}:cmd:standing"]

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
        values = self.client.mget([f"{self.p}:proc:{_key(_text(p))}" for p in procs])
        return [json.loads(v) for v in values if v is not None]

    def send_command(self, breaker: str, action: str) -> int:
        args = [breaker, action, repr(time.time()), COMMAND_LOG]
        return int(self._send(keys=self._cmd_keys, args=args))

    def read_commands(self, after: int | None) -> CommandBatch:
        seq_key, log_key, standing_key = self._cmd_keys
        if after is not None:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(seq_key)
            pipe.zrangebyscore(log_key, after + 1, "+inf", start=0, num=READ_BATCH)
            head_raw, raw = pipe.execute()
            head = int(head_raw or 0)
            log = [json.loads(v) for v in raw]
            if head == after:
                return CommandBatch(None, [], after)
            if head > after and log and command_seq(log[0]) == after + 1:
                return CommandBatch(None, log, command_seq(log[-1]))
            # The log no longer reaches back to `after` (trimmed, or Redis lost its
            # data): start over from the standing commands.
        pipe = self.client.pipeline(transaction=True)  # the head and the map it belongs to
        pipe.get(seq_key)
        pipe.hgetall(standing_key)
        head_raw, raw_standing = pipe.execute()
        standing = {_text(k): json.loads(v) for k, v in raw_standing.items()}
        return CommandBatch(standing, [], int(head_raw or 0))

    def save_standing(self, seen: int, standing: Mapping[str, Mapping[str, Any]]) -> None:
        pass  # the script keeps the standing map exact

    def set_open_until(self, breaker: str, until: float) -> None:
        ms = int((until - time.time()) * 1000)
        if ms > 0:
            self.client.set(f"{self.p}:open:{_key(breaker)}", repr(until), px=ms)

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        if not breakers:
            return {}
        values = self.client.mget([f"{self.p}:open:{_key(b)}" for b in breakers])
        return {b: float(v) for b, v in zip(breakers, values, strict=True) if v is not None}


class FileLock:
    """An exclusive lock on ``path`` across processes (and threads: one open file each)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        from django.core.files import locks

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a+b") as f:
            locks.lock(f, locks.LOCK_EX)
            try:
                yield
            finally:
                locks.unlock(f)


class CacheStore:
    """Fleet state in a Django cache (cross-process only with a shared backend).

    ``lock`` serializes senders; pass one when the backend's ``add`` is not
    atomic (the file-based cache: ``FileLock(<its directory>/...)``).
    """

    def __init__(
        self,
        cache: Any,
        prefix: str = "resilience:fleet",
        *,
        lock: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.cache = cache
        self.p = prefix
        self.lock = lock or contextlib.nullcontext
        self._head = f"{prefix}:cmd:head"
        self._standing = f"{prefix}:cmd:standing"

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

    def _slot(self, seq: int) -> str:
        return f"{self.p}:cmd:{seq}"

    def send_command(self, breaker: str, action: str) -> int:
        with self.lock():
            found = self.cache.get_many([self._head, self._standing])
            standing = found.get(self._standing) or {}
            # The head is a hint (two senders may write it out of order), so a sender
            # may find the next numbers taken: add() fails and it tries the next.
            seq = max(int(found.get(self._head) or 0), int(standing.get("seq", 0))) + 1
            while True:
                command = {"seq": seq, "breaker": breaker, "action": action, "at": time.time()}
                if self.cache.add(self._slot(seq), command, COMMAND_TTL):
                    break
                seq += 1
            # Written only after the entry: every number up to the head is in the log
            # (or expired), which is what lets a reader skip a hole below it.
            self.cache.set(self._head, seq, None)
        return seq

    def read_commands(self, after: int | None) -> CommandBatch:
        probe = [] if after is None else [self._slot(after + 1 + i) for i in range(_PROBE)]
        found = self.cache.get_many([self._head, self._standing, *probe])
        head = int(found.get(self._head) or 0)
        saved = found.get(self._standing) or {"seq": 0, "commands": {}}
        saved_seq = int(saved["seq"])
        standing = None
        if after is None or (after < saved_seq and self._slot(after + 1) not in found):
            # First read, or the log no longer reaches back to `after`: start over.
            standing, after, probe = dict(saved["commands"]), saved_seq, []
        log, seen = self._log_after(after, head, found, after + 1 + len(probe))
        return CommandBatch(standing, log, seen, stale=saved_seq < seen)

    def _log_after(
        self, after: int, head: int, found: dict[str, Any], fetched_to: int
    ) -> tuple[list[dict[str, Any]], int]:
        log: list[dict[str, Any]] = []
        seq = after + 1
        while seq <= after + READ_BATCH:
            if seq >= fetched_to:
                window = [self._slot(n) for n in range(seq, seq + 64)]
                found = self.cache.get_many(window)
                fetched_to = seq + 64
            command = found.get(self._slot(seq))
            if command is None:
                if seq > head:
                    break  # not sent yet
                # Below the head every number was written: this entry expired or the
                # cache evicted it.  Waiting would stall every later command.
                logger.warning("breaker fleet: command %d is gone from the cache", seq)
            else:
                log.append(command)
            seq += 1
        return log, seq - 1

    def save_standing(self, seen: int, standing: Mapping[str, Mapping[str, Any]]) -> None:
        saved = self.cache.get(self._standing) or {"seq": 0}
        if int(saved["seq"]) < seen:
            # Racing readers may write an older map over a newer one; each is right
            # for its number, the log covers the rest, and the next poll writes again.
            self.cache.set(
                self._standing,
                {"seq": seen, "commands": {k: dict(v) for k, v in standing.items()}},
                None,
            )

    def set_open_until(self, breaker: str, until: float) -> None:
        seconds = until - time.time()
        if seconds > 0:
            self.cache.set(f"{self.p}:open:{_key(breaker)}", until, seconds)

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        keys = {f"{self.p}:open:{_key(b)}": b for b in breakers}
        found = self.cache.get_many(list(keys))
        return {keys[k]: float(v) for k, v in found.items()}
