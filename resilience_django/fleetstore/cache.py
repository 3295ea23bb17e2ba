"""The fleet store in a Django cache shared between processes (docs/breakers.md)."""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from . import base
from .base import VERSION_KEY, CommandBatch, FleetStore, safe_key

__all__ = ["CacheStore", "file_lock"]

logger = logging.getLogger("resilience_django.breakers")
_PROBE = 4  # log entries read along with the head in the steady-state poll


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (and threads: one open file each)."""
    from django.core.files import locks

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+b") as f:
        locks.lock(f, locks.LOCK_EX)
        try:
            yield
        finally:
            locks.unlock(f)


class CacheStore(FleetStore):
    """Fleet state in a Django cache (cross-process only with a shared backend); ``lock``
    serializes senders where ``add`` is check-then-write (docs/breakers.md, "Command ordering")."""

    publish_every = 1.0

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
        # Names this numbering; the first sender after a data loss writes a new one.
        self._epoch = f"{prefix}:cmd:epoch"
        self._corrupted: set[str] = set()  # keys logged as corrupted (once each)

    def version(self) -> str | None:
        value = self.cache.get(VERSION_KEY)
        return None if value is None else str(value)

    def bump_version(self, token: str) -> None:
        self.cache.set(VERSION_KEY, token, timeout=None)

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        now = time.time()
        self.cache.set(f"{self.p}:proc:{safe_key(proc)}", dict(data), ttl)
        index = self._index()
        # Read-modify-write (a cache has no sets): written only when this process is new or
        # half-way to ageing out, so racing writers rarely collide (a lost entry comes back
        # next time).  Times by each host's clock, kept with room for clocks that disagree.
        if now - index.get(proc, 0.0) > ttl / 2:
            index = {p: t for p, t in index.items() if now - t <= ttl + base.CLOCK_SKEW}
            index[proc] = now
            self.cache.set(f"{self.p}:procs", index, None)

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        now = time.time()
        index = self._index()
        live = ttl + base.CLOCK_SKEW
        keys = [f"{self.p}:proc:{safe_key(p)}" for p, t in index.items() if now - t <= live]
        found = self.cache.get_many(keys)
        return [found[k] for k in keys if isinstance(found.get(k), dict)]

    def _index(self) -> dict[str, float]:
        index = self._sound(f"{self.p}:procs", self.cache.get(f"{self.p}:procs"), _is_dict) or {}
        # Only entries this store writes: a corrupted one is dropped at the next rewrite.
        return {p: t for p, t in index.items() if isinstance(p, str) and isinstance(t, int | float)}

    def _sound(self, key: str, value: Any, check: Callable[[Any], bool]) -> Any:
        """``value``, or ``None`` for one that fails ``check`` (hand-edited, written by
        another program): read as absent, so the next write replaces it; logged once."""
        if value is None or check(value):
            self._corrupted.discard(key)
            return value
        if key not in self._corrupted:
            self._corrupted.add(key)
            logger.warning("breaker fleet: ignored corrupted %s in the cache: %.200r", key, value)
        return None

    def _saved(self, found: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """The head and the standing map (``{"seq": n, "commands": {...}}``) in ``found``."""
        head = self._sound(self._head, found.get(self._head), _is_seq) or 0
        saved = self._sound(self._standing, found.get(self._standing), _is_standing)
        return head, saved or {"seq": 0, "commands": {}}

    def _slot(self, seq: int) -> str:
        return f"{self.p}:cmd:{seq}"

    def send_command(self, breaker: str, action: str) -> int:
        if action in base.CLOSING:
            self.clear_open_until(breaker)
        with self.lock():
            self.cache.add(self._epoch, uuid.uuid4().hex, None)
            head, saved = self._saved(self.cache.get_many([self._head, self._standing]))
            # The head is a hint (two senders may write it out of order), so a sender
            # may find the next numbers taken: add() fails and it tries the next.
            seq: int = max(head, saved["seq"]) + 1
            while True:
                command = {"seq": seq, "breaker": breaker, "action": action, "at": time.time()}
                if self.cache.add(self._slot(seq), command, base.COMMAND_TTL):
                    break
                seq += 1
            # Written only after the entry: every number up to the head is in the log
            # (or expired), which is what lets a reader skip a hole below it.
            self.cache.set(self._head, seq, None)
        return seq

    def read_commands(self, after: int | None, epoch: str | None = None) -> CommandBatch:
        probe = [] if after is None else [self._slot(after + 1 + i) for i in range(_PROBE)]
        found = self.cache.get_many([self._head, self._standing, self._epoch, *probe])
        head, saved = self._saved(found)
        saved_seq = saved["seq"]
        current = found.get(self._epoch)
        standing = None
        if (
            after is None
            or (epoch is not None and current != epoch)
            or (after < saved_seq and self._slot(after + 1) not in found)
        ):
            # First read, the cache lost its data (numbers from 1 again under a new
            # epoch), or the log no longer reaches back to `after`: start over.
            standing, after, probe = dict(saved["commands"]), saved_seq, []
        log: list[dict[str, Any]] = []
        gone = (0, 0)  # the first number below the head found gone (expired, evicted), count
        seq, fetched_to = after + 1, after + 1 + len(probe)
        while seq <= after + base.READ_BATCH:
            if seq >= fetched_to:
                found = self.cache.get_many([self._slot(n) for n in range(seq, seq + 64)])
                fetched_to = seq + 64
                if not found and fetched_to <= head:
                    # 64 gone in a row: expired or evicted, or no sender wrote that head.  Walking
                    # could take forever: find the oldest entry left (caches drop the oldest first).
                    there, has = range(fetched_to, head + 1), self.cache.has_key
                    hi = fetched_to + bisect.bisect(there, False, key=lambda n: has(self._slot(n)))
                    gone = (gone[0] or seq, gone[1] + hi - seq)
                    seq = fetched_to = hi
                    continue
            command = found.get(self._slot(seq))
            if command is not None:
                log.append(command)
            elif seq > head:
                break  # not sent yet
            else:  # every number below the head was written: this entry expired or the
                gone = (gone[0] or seq, gone[1] + 1)  # cache evicted it
            seq += 1
        if gone[1]:  # once a read, not once a number; waiting for them would stall the rest
            logger.warning("breaker fleet: command %d is gone from the cache (%d in all)", *gone)
        return CommandBatch(standing, log, seq - 1, stale=saved_seq < seq - 1, epoch=current)

    def save_standing(self, seen: int, standing: Mapping[str, Mapping[str, Any]]) -> None:
        saved = self._sound(self._standing, self.cache.get(self._standing), _is_standing)
        if saved is None or saved["seq"] < seen:
            # Racing readers may write an older map over a newer one; each is right
            # for its number, the log covers the rest, and the next poll writes again.
            commands = {k: dict(v) for k, v in standing.items()}
            self.cache.set(self._standing, {"seq": seen, "commands": commands}, None)

    def set_open_until(self, breaker: str, until: float) -> None:
        seconds = until - time.time()
        if seconds > 0:
            self.cache.set(f"{self.p}:open:{safe_key(breaker)}", until, seconds)

    def clear_open_until(self, breaker: str) -> None:
        self.cache.delete(f"{self.p}:open:{safe_key(breaker)}")

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        keys = {f"{self.p}:open:{safe_key(b)}": b for b in breakers}
        found = self.cache.get_many(list(keys))
        return {keys[k]: base.number(v) for k, v in found.items()}


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_seq(value: Any) -> bool:
    return isinstance(value, int) and 0 <= value < 2**62  # beyond: no sender wrote it


def _is_standing(value: Any) -> bool:
    return _is_dict(value) and _is_seq(value.get("seq")) and _is_dict(value.get("commands"))
