"""The fleet store in Redis: ``lua/fleet_command.lua`` numbers, logs and records each
operator command in one atomic step (docs/breakers.md); every key shares one hash tag,
so the store works on Redis Cluster."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from . import base
from .base import VERSION_KEY, CommandBatch, FleetStore, number, parse_json, safe_key, text

__all__ = ["RedisStore"]


class RedisStore(FleetStore):
    """Fleet state in Redis, under ``prefix`` (all keys share one hash tag for Cluster)."""

    publish_every = 1.0

    def __init__(
        self,
        client: Any = None,
        prefix: str = "resilience:fleet",
        *,
        connect: Callable[[], Any] | None = None,
    ) -> None:
        """``client``, or ``connect``: builds it at first use (a sync ``RedisCluster``
        connects as it is built: made while the cluster is down, it would raise here)."""
        self._client = client
        self._connect = connect
        self._client_lock = threading.Lock()
        self.p = "{" + prefix + "}"
        source = resources.files("resilience_django").joinpath("lua", "fleet_command.lua")
        self._source = source.read_text(encoding="utf-8")
        self._script: Any = None if client is None else client.register_script(self._source)
        self._cmd_keys = [f"{self.p}:cmd:seq", f"{self.p}:cmd:log", f"{self.p}:cmd:standing"]
        # Names this numbering; the first sender after a data loss writes a new one.
        self._epoch_key = f"{self.p}:cmd:epoch"

    @property
    def client(self) -> Any:
        """The client, built by the first call that needs it (one that raises, the next retries)."""
        client = self._client
        if client is None:
            assert self._connect is not None
            with self._client_lock:  # one client per store, however many threads ask
                if self._client is None:
                    built = self._connect()
                    self._script = built.register_script(self._source)
                    self._client = built
                client = self._client
        return client

    def version(self) -> str | None:
        return _text_or_none(self.client.get(VERSION_KEY))

    def bump_version(self, token: str) -> None:
        self.client.set(VERSION_KEY, token)

    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(f"{self.p}:proc:{safe_key(proc)}", json.dumps(data), px=int(ttl * 1000))
        pipe.zadd(f"{self.p}:procs", {proc: now})
        # Scored by each host's clock: pruned (and read) with room for clocks that disagree;
        # the report's expiry, on Redis's clock, says who is live.
        pipe.zremrangebyscore(f"{self.p}:procs", "-inf", now - ttl - base.CLOCK_SKEW)
        pipe.execute()

    def processes(self, ttl: float) -> list[dict[str, Any]]:
        since = time.time() - ttl - base.CLOCK_SKEW
        procs = self.client.zrangebyscore(f"{self.p}:procs", since, "+inf")
        if not procs:
            return []
        values = self.client.mget([f"{self.p}:proc:{safe_key(text(p))}" for p in procs])
        reports = [parse_json(v) for v in values if v is not None]
        return [r for r in reports if isinstance(r, dict)]  # a corrupted one hides no other

    def send_command(self, breaker: str, action: str) -> int:
        # Read at call time so tests can shorten the log.
        args = [breaker, action, repr(time.time()), base.COMMAND_LOG]
        client = self.client  # built first: it registers the script
        if action in base.CLOSING:
            self.clear_open_until(breaker)
        client.set(self._epoch_key, uuid.uuid4().hex, nx=True)
        return int(self._script(keys=self._cmd_keys, args=args, client=client))

    def read_commands(self, after: int | None, epoch: str | None = None) -> CommandBatch:
        seq_key, log_key, standing_key = self._cmd_keys
        if after is not None:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(seq_key)
            pipe.get(self._epoch_key)
            # Numbered by score, not by content: an entry that does not parse still has one.
            pipe.zrangebyscore(
                log_key, after + 1, "+inf", start=0, num=base.READ_BATCH, withscores=True
            )
            head_raw, epoch_raw, raw = pipe.execute()
            head = int(head_raw or 0)
            # Another epoch: Redis lost its data, these are not the numbers `after` counted
            # (a reader that saw none yet read before the first command was sent).
            current = _text_or_none(epoch_raw)
            same = epoch is None or current == epoch
            if same and head == after:
                return CommandBatch(None, [], after, epoch=current)
            if same and head > after and raw and int(raw[0][1]) == after + 1:
                log = [parse_json(v) for v, _ in raw]
                return CommandBatch(None, log, int(raw[-1][1]), epoch=current)
            # The log no longer reaches back to `after` (trimmed, or Redis lost its
            # data): start over from the standing commands.
        pipe = self.client.pipeline(transaction=True)  # the head and the map it belongs to
        pipe.get(seq_key)
        pipe.get(self._epoch_key)
        pipe.hgetall(standing_key)
        head_raw, epoch_raw, raw_standing = pipe.execute()
        standing = {text(k): parse_json(v) for k, v in raw_standing.items()}
        return CommandBatch(standing, [], int(head_raw or 0), epoch=_text_or_none(epoch_raw))

    def set_open_until(self, breaker: str, until: float) -> None:
        ms = int((until - time.time()) * 1000)
        if ms > 0:
            self.client.set(f"{self.p}:open:{safe_key(breaker)}", repr(until), px=ms)

    def clear_open_until(self, breaker: str) -> None:
        self.client.delete(f"{self.p}:open:{safe_key(breaker)}")

    def open_until(self, breakers: Sequence[str]) -> dict[str, float]:
        values = self.client.mget([f"{self.p}:open:{safe_key(b)}" for b in breakers])
        return {b: number(v) for b, v in zip(breakers, values, strict=True) if v is not None}


def _text_or_none(value: Any) -> str | None:
    return None if value is None else text(value)
