"""Distributed limits: every rule of a request decided in one Lua call on Redis (docs/redis.md).

No errors are caught here: the ``HybridLimiter`` decides what a Redis failure means.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import hashlib
import struct
import threading
from collections.abc import AsyncGenerator, Awaitable
from importlib import resources
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError

from .. import loop_lag
from ..loop_alarm import alarm_clock
from .decision import Algorithm, Decision, LimitCheck, Policy, RuleOutcome
from .redis_conn import AsyncClient, RedisSettings, SyncClient, make_async_client, make_sync_client

__all__ = ["UNASSIGNED", "RedisLimiter", "load_script"]

# The node of a cluster slot no master serves (yet): such keys share one breaker.
UNASSIGNED = "unassigned"

_ALGO_CODES = {Algorithm.SLIDING_WINDOW: 1, Algorithm.TOKEN_BUCKET: 2, Algorithm.GCRA: 3}
_ALGO_TAGS = {Algorithm.SLIDING_WINDOW: "sw", Algorithm.TOKEN_BUCKET: "tb", Algorithm.GCRA: "gc"}
_MAX_RAW_KEY = 64
_EMPTY = Decision(allowed=True, outcomes=(), backend="redis")
_SPEC = struct.Struct("<5d")
_FLAGS = struct.Struct("<2d")
_PEEK = _FLAGS.pack(0, 0)
_COMMIT = _FLAGS.pack(1, 0)
_REPLY1 = struct.Struct("<6d")
T = TypeVar("T")
Checks = tuple[LimitCheck, ...]
Pair = tuple[Decision, Decision | None]
Loop = asyncio.AbstractEventLoop
_Side = tuple[AsyncClient, asyncio.Task[bool]]  # a loop's client and its warm-up
_WARM_UP = "resilience-redis-warm-up"  # the name of a warm-up task


def load_script(name: str) -> tuple[str, str]:
    """Return ``(source, sha1)`` of a script shipped in ``limiting/lua``."""
    source = resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")
    return source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


@functools.cache
def _reply(n: int) -> struct.Struct:
    """How the answer for ``n`` checks is packed: two flags, then four numbers per check."""
    return struct.Struct(f"<{2 + 4 * n}d")


def _tag(client_key: str) -> str:
    if len(client_key) <= _MAX_RAW_KEY and "{" not in client_key and "}" not in client_key:
        return client_key
    return "h:" + hashlib.blake2b(client_key.encode(), digest_size=12).hexdigest()


class _Parts:
    """What a policy contributes to every call: key suffix and packed script arguments."""

    __slots__ = ("alone", "policy", "spec", "spec1", "suffix")

    def __init__(self, policy: Policy) -> None:
        period_us = max(1, round(policy.rate.period * 1_000_000))
        algorithm = Algorithm(policy.algorithm)
        self.policy = policy  # kept: the id() this is cached under cannot be reused
        self.suffix = f"}}:{policy.name}:{_ALGO_TAGS[algorithm]}{period_us // 1000}".encode()
        self.spec = (_ALGO_CODES[algorithm], policy.rate.limit, period_us, policy.capacity)
        # Packed once: a check of cost 1 (nearly all), and a committing one-check call of it.
        self.spec1 = _SPEC.pack(*self.spec, 1)
        self.alone = _COMMIT + self.spec1


class RedisLimiter:
    """A ``Limiter`` whose state lives in Redis: ``decide`` on ``client``, ``adecide`` on a
    client built from ``settings`` for each event loop (an asyncio client belongs to its loop)."""

    __slots__ = (
        "_aclients",
        "_alast",
        "_atimeout",
        "_client",
        "_client_lock",
        "_guards",
        "_parts",
        "_prefix",
        "_refreshes",
        "_rewarms",
        "_sha",
        "_source",
        "cluster",
        "settings",
    )

    def __init__(self, client: SyncClient | None = None, *, settings: RedisSettings) -> None:
        # None: built at first use (``client``).
        self._client = client
        self._client_lock = threading.Lock()
        self.settings = settings
        # (loop, client, warm-up) of the last loop served, swapped as one object: loops in
        # several threads (async_to_sync) must never read one's client with another's warm-up.
        self._alast: tuple[Loop, AsyncClient, asyncio.Task[bool]] | None = None
        # Each live loop's client and warm-up (a redis.asyncio client belongs to its loop),
        # shutdown hook (_close_with_loop), cluster topology refresh and background warm-up.
        self._aclients: WeakKeyDictionary[Loop, _Side] = WeakKeyDictionary()
        self._guards: WeakKeyDictionary[Loop, AsyncGenerator[None, None]] = WeakKeyDictionary()
        self._refreshes: WeakKeyDictionary[Loop, asyncio.Task[None]] = WeakKeyDictionary()
        self._rewarms: WeakKeyDictionary[Loop, asyncio.Task[bool]] = WeakKeyDictionary()
        self._prefix = (settings.key_prefix + ":{").encode()
        self.cluster = settings.cluster if client is None else isinstance(client, RedisCluster)
        self._atimeout = settings.socket_timeout
        self._source, sha = load_script("limit.lua")
        # Bytes: redis-py passes them through, a str costs an encode per call (~0.5 us).
        self._sha = sha.encode()
        # Per-policy pieces, found by id(): hashing a frozen dataclass costs a microsecond.
        self._parts: dict[int, _Parts] = {}

    @property
    def client(self) -> SyncClient:
        """The sync client, built (and, for a cluster, connected) by the first call that
        needs it, never with the limiter (docs/redis.md#redis-cluster)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = make_sync_client(self.settings)
                client = self._client
        return client

    def slot_key(self, checks: Checks) -> bytes:
        """A key in the first check's cluster slot (its hash tag alone)."""
        return self._prefix + _tag(checks[0].key).encode() + b"}"

    def node_of(self, checks: Checks, *, asynchronous: bool = False) -> str | None:
        """The cluster node (``host:port``) holding the first check's slot as the deciding
        client sees it now; ``UNASSIGNED`` for a slot without a master, None before any."""
        last = self._alast
        client: Any = last[1] if asynchronous and last is not None else self._client
        try:
            node = client.get_node_from_key(self.slot_key(checks))
        except Exception:  # a slot without a master, or no topology yet
            with contextlib.suppress(Exception):  # no topology
                if client.get_nodes():
                    return UNASSIGNED
            return None
        return UNASSIGNED if node is None else str(node.name)

    def _part(self, policy: Policy) -> _Parts:
        parts = self._parts.get(id(policy))
        if parts is None or parts.policy is not policy:
            if len(self._parts) > 4096:  # policies rebuilt by settings reloads
                self._parts.clear()
            parts = self._parts[id(policy)] = _Parts(policy)
        return parts

    def _args(self, checks: Checks, commit: bool, split: int = 0) -> list[Any]:
        """The EVALSHA command as arguments for a (cluster) client's execute_command:
        the keys, then one packed argument (flags, then every check's spec)."""
        if len(checks) == 1 and commit and not split and checks[0].cost == 1:
            check = checks[0]
            parts = self._part(check.policy)
            key = self._prefix + _tag(check.key).encode() + parts.suffix
            return ["EVALSHA", self._sha, b"1", key, parts.alone]
        args: list[Any] = ["EVALSHA", self._sha, b"%d" % len(checks)]
        argv = [_FLAGS.pack(1 if commit else 0, split) if split else _COMMIT if commit else _PEEK]
        prefix, part = self._prefix, self._part
        for check in checks:
            parts = part(check.policy)
            args.append(prefix + _tag(check.key).encode() + parts.suffix)
            argv.append(parts.spec1 if check.cost == 1 else _SPEC.pack(*parts.spec, check.cost))
        args.append(b"".join(argv))
        return args

    def _decode(self, checks: Checks, raw: bytes) -> Decision:
        if len(checks) == 1:
            v = _REPLY1.unpack(raw)
            outcome = RuleOutcome(checks[0], v[2] == 1, int(v[3]), v[4] / 1e6, v[5] / 1e6)
            return Decision(v[0] == 1, (outcome,), "redis")
        v = _reply(len(checks)).unpack(raw)
        return Decision(v[0] == 1, _outcomes(checks, v), "redis")

    def _decode_pair(self, checks: Checks, enforced: int, raw: bytes) -> tuple[Decision, Decision]:
        """The answer of a call with a shadow group: checks ``enforced``.. are shadow."""
        v = _reply(len(checks)).unpack(raw)
        outcomes = _outcomes(checks, v)
        return (
            Decision(v[0] == 1, outcomes[:enforced], "redis"),
            Decision(v[1] == 1, outcomes[enforced:], "redis"),
        )

    def _slot_groups(self, checks: Checks) -> list[Checks]:
        groups: dict[int, list[LimitCheck]] = {}
        for check in checks:
            groups.setdefault(key_slot(_tag(check.key).encode()), []).append(check)
        return [tuple(g) for g in groups.values()]

    def warm_up(self) -> None:
        """Connect and load the script now, so no decision pays for either; raises."""
        self.client.script_load(self._source)

    def decide(self, checks: Checks) -> Decision:
        """Decide every check in one script call; raises redis-py errors as they come."""
        if not checks:
            return _EMPTY
        if self.cluster and len(checks) > 1:
            groups = self._slot_groups(checks)
            if len(groups) > 1:
                for commit in (False, True):  # peek at every slot, then commit each
                    parts = [self._decode(g, self._raw_args(self._args(g, commit))) for g in groups]
                    if not all(p.allowed for p in parts):
                        break
                return _merge(checks, parts)
        return self._decode(checks, self._raw_args(self._args(checks, True)))

    def decide_with_shadow(self, checks: Checks, shadow: Checks) -> Pair:
        """Enforced and shadow checks in one call, each group all-or-nothing on its own."""
        if not shadow:
            return self.decide(checks), None
        both = checks + shadow
        if not checks or (self.cluster and len(self._slot_groups(both)) > 1):
            return self.decide(checks), self.decide(shadow)
        raw = self._raw_args(self._args(both, True, len(checks) + 1))
        return self._decode_pair(both, len(checks), raw)

    def _async_side(self) -> _Side:
        loop = asyncio.get_running_loop()
        last = self._alast
        if last is not None and last[0] is loop:
            return last[1], last[2]
        entry = self._aclients.get(loop)
        if entry is None:
            client = make_async_client(self.settings)
            warm = loop.create_task(self._awarm_up(client), name=_WARM_UP)
            entry = self._aclients[loop] = (client, warm)
            loop_lag.watch(loop)
            self._close_with_loop(loop, client)
        self._alast = (loop, *entry)
        return entry

    def _close_with_loop(self, loop: Loop, client: AsyncClient) -> None:
        """Close ``client`` when ``loop`` shuts down (``asyncio.run``, each ``async_to_sync`` call):
        an async generator, finalized in ``shutdown_asyncgens``, before the loop closes."""

        async def until_shutdown() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                entry = self._aclients.get(loop)
                if entry is not None and entry[0] is client:  # not closed already
                    self._forget(loop)
                    await _aclose_client(client)

        guard = until_shutdown()
        # Its first step registers it with the loop, which holds it weakly: this limiter keeps it.
        with contextlib.suppress(StopIteration):
            guard.asend(None).send(None)
        self._guards[loop] = guard

    def _forget(self, loop: Loop) -> None:
        """Drop ``loop``'s client and cancel its background tasks (the client stays open)."""
        entry = self._aclients.pop(loop, None)
        self._guards.pop(loop, None)
        warm = None if entry is None else entry[1]
        for pending in (warm, self._rewarms.pop(loop, None), self._refreshes.pop(loop, None)):
            if pending is not None:
                pending.cancel()
        last = self._alast
        if last is not None and last[0] is loop:
            self._alast = None

    async def _awarm_up(self, client: AsyncClient) -> bool:
        """Connect and load the script under the connect budget; never raises."""
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await client.script_load(self._source)
        except Exception:  # reported by the decisions that follow, within their budget
            return False
        return True

    async def _ready(self) -> AsyncClient:
        """This loop's client, once its warm-up is over; a cluster's failed warm-up is retried
        in the background, decisions failing at once meanwhile (docs/redis.md#redis-cluster)."""
        client, warm = self._async_side()
        if not warm.done():
            await asyncio.shield(warm)  # a request that gives up must not cancel the warm-up
        if self.cluster and not warm.result():
            loop = asyncio.get_running_loop()
            retry = self._rewarms.get(loop)
            if retry is not None and retry.done() and retry.result():
                self._aclients[loop] = (client, retry)
                self._alast = (loop, client, retry)
                del self._rewarms[loop]
                return client
            if retry is None or retry.done():
                self._rewarms[loop] = loop.create_task(self._awarm_up(client), name=_WARM_UP)
            raise RedisConnectionError("the cluster client is not initialized yet")
        return client

    def bound_async_calls(self, seconds: float) -> None:
        """Bound every async call to ``seconds`` when tighter than the socket timeout."""
        self._atimeout = min(self._atimeout, seconds)

    async def _araw_on(
        self, client: AsyncClient, checks: Checks, commit: bool, split: int
    ) -> bytes:
        args = self._args(checks, commit, split)
        try:
            return await client.execute_command(*args)  # type: ignore[no-any-return]
        except NoScriptError:
            await client.script_load(self._source)
            return await client.execute_command(*args)  # type: ignore[no-any-return]
        except ClusterError:
            if not self.cluster:
                raise
            # redis.asyncio split an ASK redirect: resend in a thread (docs/redis.md#redis-cluster).
            return await asyncio.to_thread(self._raw_args, args)

    def _raw_args(self, args: list[Any]) -> bytes:
        client = self.client
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call,no-any-return]
        except NoScriptError:
            client.script_load(self._source)
            return client.execute_command(*args)  # type: ignore[no-untyped-call,no-any-return]

    async def adecide(self, checks: Checks) -> Decision:
        """``decide`` on ``redis.asyncio``, bounded by ``bound_async_calls`` (past it,
        ``TimeoutError``); a loop's first call waits for its warm-up (connect budget)."""
        if not checks:
            return _EMPTY
        client = await self._ready()
        if self.cluster:
            return await self._abounded(client, self._adecide(client, checks))
        raw = await _bounded(self._araw_on(client, checks, True, 0), self._atimeout)
        return self._decode(checks, raw)

    async def _adecide(self, client: AsyncClient, checks: Checks) -> Decision:
        """``decide`` on a cluster, on ``client``."""
        groups = self._slot_groups(checks) if len(checks) > 1 else [checks]
        if len(groups) > 1:
            for commit in (False, True):
                parts = [self._decode(g, await self._araw_on(client, g, commit, 0)) for g in groups]
                if not all(p.allowed for p in parts):
                    break
            return _merge(checks, parts)
        return self._decode(checks, await self._araw_on(client, checks, True, 0))

    async def adecide_with_shadow(self, checks: Checks, shadow: Checks) -> Pair:
        """``decide_with_shadow`` on ``redis.asyncio``, bounded as a whole like ``adecide``."""
        if not shadow:
            return await self.adecide(checks), None
        if not checks:
            return _EMPTY, await self.adecide(shadow)
        client = await self._ready()
        return await self._abounded(client, self._adecide_with_shadow(client, checks, shadow))

    async def _abounded(self, client: AsyncClient, aw: Awaitable[T]) -> T:
        """``aw`` bounded by ``bound_async_calls``; on a cluster, a failure refreshes the
        topology in a task of its own (docs/redis.md#redis-cluster)."""
        try:
            return await _bounded(aw, self._atimeout)
        except Exception:
            loop = asyncio.get_running_loop()
            running = self._refreshes.get(loop)
            if self.cluster and (running is None or running.done()):
                self._refreshes[loop] = loop.create_task(
                    self._arefresh(client), name="resilience-redis-cluster-refresh"
                )
            raise

    async def _arefresh(self, client: AsyncClient) -> None:
        if isinstance(client, AsyncRedisCluster):
            with contextlib.suppress(Exception):  # the next failure starts another
                async with asyncio.timeout(self.settings.connect_timeout):
                    await client.initialize()

    async def _adecide_with_shadow(
        self, client: AsyncClient, checks: Checks, shadow: Checks
    ) -> Pair:
        both = checks + shadow
        if self.cluster and len(self._slot_groups(both)) > 1:
            return await self._adecide(client, checks), await self._adecide(client, shadow)
        raw = await self._araw_on(client, both, True, len(checks) + 1)
        return self._decode_pair(both, len(checks), raw)

    def close(self) -> None:
        """Close the sync client's connections (and its sentinels', if any)."""
        client = self._client
        if isinstance(client, Redis):
            pool = client.connection_pool
            for watcher in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
                watcher.close()
            pool.disconnect()
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close this loop's async client's connections (for tests and shutdown)."""
        last = self._alast
        if last is None:
            return
        self._forget(last[0])
        await _aclose_client(last[1])


async def _aclose_client(client: AsyncClient) -> None:
    """Close an async client's connections (and its sentinels', if any)."""
    if isinstance(client, AsyncRedis):
        pool = client.connection_pool
        for watcher in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await watcher.aclose()
        await client.aclose(close_connection_pool=True)
    else:
        await client.aclose()


async def _bounded(aw: Awaitable[T], seconds: float) -> T:
    """``asyncio.timeout(seconds)``'s semantics on the loop's *settling* alarm (``loop_alarm``)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    assert task is not None  # every caller of adecide awaits it in a task, as asyncio.timeout needs
    alarm = alarm_clock(loop).arm(task, loop.time() + seconds, settle=True)
    try:
        return await aw
    except asyncio.CancelledError as exc:
        if alarm.fired_for(task):
            raise builtins.TimeoutError from exc
        raise
    finally:
        alarm.close(task)


def _outcomes(checks: Checks, v: tuple[float, ...]) -> tuple[RuleOutcome, ...]:
    outcomes = []
    i = 2
    for check in checks:  # a loop: about 0.7 us faster than a comprehension over zip()
        outcomes.append(
            RuleOutcome(check, v[i] == 1, int(v[i + 1]), v[i + 2] / 1e6, v[i + 3] / 1e6)
        )
        i += 4
    return tuple(outcomes)


def _merge(checks: Checks, parts: list[Decision]) -> Decision:
    """Join per-slot decisions back into one, outcomes in the order of ``checks``."""
    by_check = {id(o.check): o for p in parts for o in p.outcomes}
    outcomes = tuple(by_check[id(c)] for c in checks)
    return Decision(allowed=all(o.allowed for o in outcomes), outcomes=outcomes, backend="redis")
