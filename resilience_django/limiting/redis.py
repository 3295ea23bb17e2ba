"""Distributed limits: every rule of a request decided in one Lua call on Redis.

Key layout (one key per rule and client)::

    <prefix>:{<client key>}:<rule name>:<algorithm><period ms>

The hash tag is the *client key* (the ``ip:…``/``user:…`` value the rule
extracts), not the rule: a request's rules usually key on the same client, so
all of its keys land in one cluster slot and the decision stays one atomic
script call; and different clients spread over the cluster instead of one
rule's traffic piling onto one node.  Client keys that are long or contain
braces are replaced by a hash, so a hostile header cannot choose the slot.
The algorithm and period are part of the key so that a rule retuned live (say
from ``100/m`` to ``100/h``) starts fresh instead of misreading old state.

On Redis Cluster a request whose rules key on different clients can touch
several slots; it is then decided per slot, first a peek at every slot, then a
commit per slot.  A rejection in the peek consumes nothing; the documented
gap: between peek and commit another request may take the last unit of one
slot's rule, in which case the other slots' units are spent once, as with any
non-atomic pair of writes.

The script is registered once and run with EVALSHA; after a ``SCRIPT FLUSH``
(NOSCRIPT) it is loaded again transparently.  No errors are caught here: the
``HybridLimiter`` decides what a Redis failure means.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from importlib import resources
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from .decision import Algorithm, Decision, LimitCheck, Policy, RuleOutcome
from .redis_conn import AsyncClient, RedisSettings, SyncClient, make_async_client

__all__ = ["RedisLimiter", "load_script"]

_ALGO_CODES = {Algorithm.SLIDING_WINDOW: 1, Algorithm.TOKEN_BUCKET: 2, Algorithm.GCRA: 3}
_ALGO_TAGS = {Algorithm.SLIDING_WINDOW: "sw", Algorithm.TOKEN_BUCKET: "tb", Algorithm.GCRA: "gc"}
_MAX_RAW_KEY = 64
_COST_1 = b"$1\r\n1\r\n"
_EMPTY = Decision(allowed=True, outcomes=(), backend="redis")


def load_script(name: str) -> tuple[str, str]:
    """Return ``(source, sha1)`` of a script shipped in ``limiting/lua``."""
    source = resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")
    return source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _tag(client_key: str) -> str:
    if len(client_key) <= _MAX_RAW_KEY and "{" not in client_key and "}" not in client_key:
        return client_key
    return "h:" + hashlib.blake2b(client_key.encode(), digest_size=12).hexdigest()


class _Parts:
    """What a policy contributes to every call: key suffix and script arguments."""

    __slots__ = ("args", "packed", "suffix")

    def __init__(self, policy: Policy) -> None:
        period_us = max(1, round(policy.rate.period * 1_000_000))
        algorithm = Algorithm(policy.algorithm)
        self.suffix = f"}}:{policy.name}:{_ALGO_TAGS[algorithm]}{period_us // 1000}"
        self.args = (_ALGO_CODES[algorithm], policy.rate.limit, period_us, policy.capacity)
        self.packed = b"".join(_bulk(str(a).encode()) for a in self.args)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


class RedisLimiter:
    """A ``Limiter`` whose state lives in Redis; ``decide`` sync, ``adecide`` async.

    ``client`` serves ``decide``; ``adecide`` uses ``async_client`` or builds one
    from ``settings`` on first use in each event loop (an asyncio Redis client
    belongs to the loop that created it).

    On a single node the call is written to the socket as prebuilt RESP bytes
    on a connection taken from the client's own pool, and the script answers
    with one string: redis-py's generic argument packing and array parsing
    cost more than the whole script runs.  On a cluster the regular client
    call routes by key.
    """

    __slots__ = (
        "_aclient",
        "_aclients",
        "_aloop",
        "_client",
        "_cluster",
        "_heads",
        "_parts",
        "_prefix",
        "_settings",
        "_sha",
        "_source",
    )

    def __init__(
        self,
        client: SyncClient,
        *,
        async_client: AsyncClient | None = None,
        settings: RedisSettings | None = None,
        key_prefix: str | None = None,
        cluster: bool | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._aclient = async_client
        self._aloop: object | None = None
        # One async client per event loop (a redis.asyncio client belongs to the
        # loop it was made on), kept while the loop lives: a process that goes
        # back and forth between loops reuses each loop's pool.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        if key_prefix is None:
            key_prefix = settings.key_prefix if settings is not None else "rl"
        self._prefix = key_prefix + ":{"
        if cluster is None:
            cluster = isinstance(client, RedisCluster)
        self._cluster = cluster
        self._source, self._sha = load_script("limit.lua")
        # Per-policy pieces, computed once per policy rather than per request.
        self._parts: dict[Policy, _Parts] = {}
        self._heads: dict[tuple[int, bool], bytes] = {}

    @property
    def client(self) -> SyncClient:
        return self._client

    # -- encoding -----------------------------------------------------------------

    def _part(self, policy: Policy) -> _Parts:
        parts = self._parts.get(policy)
        if parts is None:
            if len(self._parts) > 4096:  # policies rebuilt by settings reloads
                self._parts.clear()
            parts = self._parts[policy] = _Parts(policy)
        return parts

    def _key(self, check: LimitCheck, parts: _Parts) -> str:
        return self._prefix + _tag(check.key) + parts.suffix

    def _packed(self, checks: tuple[LimitCheck, ...], commit: bool, split: int = 0) -> bytes:
        """The whole EVALSHA command as RESP bytes (``split``: first shadow check, 1-based)."""
        n = len(checks)
        head = self._heads.get((n, commit))
        if head is None:
            count = str(n).encode()
            head = b"*%d\r\n$7\r\nEVALSHA\r\n%b%b" % (
                3 + n + 1 + 5 * n,
                _bulk(self._sha.encode()),
                _bulk(count),
            )
            self._heads[(n, commit)] = head
        keys = []
        if split:
            args = [_bulk(b"%d %d" % (1 if commit else 0, split))]
        else:
            args = [b"$1\r\n1\r\n" if commit else b"$1\r\n0\r\n"]
        for check in checks:
            parts = self._part(check.policy)
            keys.append(_bulk(self._key(check, parts).encode()))
            args.append(parts.packed)
            cost = check.cost
            args.append(_COST_1 if cost == 1 else _bulk(str(cost).encode()))
        return head + b"".join(keys) + b"".join(args)

    def _args(
        self, checks: tuple[LimitCheck, ...], commit: bool, split: int = 0
    ) -> list[str | int]:
        """The EVALSHA command as arguments for a (cluster) client's execute_command."""
        keys: list[str | int] = []
        flag = "1" if commit else "0"
        args: list[str | int] = [f"{flag} {split}" if split else flag]
        for check in checks:
            parts = self._part(check.policy)
            keys.append(self._key(check, parts))
            args.extend(parts.args)
            args.append(check.cost)
        return ["EVALSHA", self._sha, len(checks), *keys, *args]

    @staticmethod
    def _decode(checks: tuple[LimitCheck, ...], raw: bytes | str) -> Decision:
        v = raw.split()
        if len(checks) == 1:
            allowed = v[1] == b"1" or v[1] == "1"
            return Decision(
                allowed,
                (RuleOutcome(checks[0], allowed, int(v[2]), int(v[3]) / 1e6, int(v[4]) / 1e6),),
                "redis",
            )
        outcomes = []
        i = 1
        for check in checks:
            outcomes.append(
                RuleOutcome(
                    check, int(v[i]) == 1, int(v[i + 1]), int(v[i + 2]) / 1e6, int(v[i + 3]) / 1e6
                )
            )
            i += 4
        return Decision(int(v[0]) == 1, tuple(outcomes), "redis")

    @staticmethod
    def _decode_pair(
        checks: tuple[LimitCheck, ...], enforced: int, raw: bytes | str
    ) -> tuple[Decision, Decision]:
        """The answer of a call with a shadow group: checks ``enforced``.. are shadow."""
        v = raw.split()
        outcomes = []
        i = 2
        for check in checks:
            outcomes.append(
                RuleOutcome(
                    check, int(v[i]) == 1, int(v[i + 1]), int(v[i + 2]) / 1e6, int(v[i + 3]) / 1e6
                )
            )
            i += 4
        return (
            Decision(int(v[0]) == 1, tuple(outcomes[:enforced]), "redis"),
            Decision(int(v[1]) == 1, tuple(outcomes[enforced:]), "redis"),
        )

    def _slot_groups(self, checks: tuple[LimitCheck, ...]) -> list[tuple[LimitCheck, ...]]:
        groups: dict[int, list[LimitCheck]] = {}
        for check in checks:
            groups.setdefault(key_slot(_tag(check.key).encode()), []).append(check)
        return [tuple(g) for g in groups.values()]

    # -- sync ---------------------------------------------------------------------

    def _call(self, checks: tuple[LimitCheck, ...], commit: bool, split: int = 0) -> Any:
        client = self._client
        if self._cluster:
            return client.execute_command(*self._args(checks, commit, split))  # type: ignore[no-untyped-call]
        pool = client.connection_pool  # type: ignore[union-attr]
        conn = pool.get_connection()
        try:
            # Errors disconnect the connection inside redis-py, so releasing it
            # in any case is safe: a broken one is reconnected on next use.
            conn.send_packed_command([self._packed(checks, commit, split)], False)
            return conn.read_response()
        finally:
            pool.release(conn)

    def _raw(self, checks: tuple[LimitCheck, ...], commit: bool = True, split: int = 0) -> Any:
        try:
            return self._call(checks, commit, split)
        except NoScriptError:
            self._client.script_load(self._source)
            return self._call(checks, commit, split)

    def _run(self, checks: tuple[LimitCheck, ...], commit: bool = True) -> Decision:
        return self._decode(checks, self._raw(checks, commit))

    def decide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """Decide every check in one script call; raises redis-py errors as they come."""
        if not checks:
            return _EMPTY
        if self._cluster and len(checks) > 1:
            groups = self._slot_groups(checks)
            if len(groups) > 1:
                peeks = [self._run(g, commit=False) for g in groups]
                if not all(p.allowed for p in peeks):
                    return _merge(checks, peeks)
                return _merge(checks, [self._run(g) for g in groups])
        return self._run(checks)

    def decide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """Enforced and shadow checks in one call, each group all-or-nothing on its own."""
        if not shadow:
            return self.decide(checks), None
        if not checks:
            return _EMPTY, self.decide(shadow)
        both = checks + shadow
        if self._cluster and len(self._slot_groups(both)) > 1:
            return self.decide(checks), self.decide(shadow)
        return self._decode_pair(both, len(checks), self._raw(both, split=len(checks) + 1))

    # -- async --------------------------------------------------------------------

    def _async_client(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aloop is loop and self._aclient is not None:
            return self._aclient
        if self._settings is None:
            # A client handed in by the caller is used as is, on its own loop.
            if self._aclient is None:
                raise RuntimeError("RedisLimiter needs async_client or settings for adecide")
            self._aloop = loop
            return self._aclient
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = make_async_client(self._settings)
        self._aclient, self._aloop = client, loop
        return client

    async def _acall(
        self, client: AsyncClient, checks: tuple[LimitCheck, ...], commit: bool, split: int = 0
    ) -> Any:
        if self._cluster:
            return await client.execute_command(*self._args(checks, commit, split))
        pool = client.connection_pool  # type: ignore[union-attr]
        conn = await pool.get_connection()
        try:
            # redis.asyncio disconnects a connection whose read was cancelled
            # (asyncio.timeout), so it never hands back a half-read reply.
            await conn.send_packed_command([self._packed(checks, commit, split)], False)
            return await conn.read_response()
        finally:
            await pool.release(conn)

    async def _araw(
        self, checks: tuple[LimitCheck, ...], commit: bool = True, split: int = 0
    ) -> Any:
        client = self._async_client()
        try:
            return await self._acall(client, checks, commit, split)
        except NoScriptError:
            await client.script_load(self._source)
            return await self._acall(client, checks, commit, split)

    async def _arun(self, checks: tuple[LimitCheck, ...], commit: bool = True) -> Decision:
        return self._decode(checks, await self._araw(checks, commit))

    async def adecide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """``decide`` on ``redis.asyncio``; never blocks the event loop."""
        if not checks:
            return _EMPTY
        if self._cluster and len(checks) > 1:
            groups = self._slot_groups(checks)
            if len(groups) > 1:
                peeks = [await self._arun(g, commit=False) for g in groups]
                if not all(p.allowed for p in peeks):
                    return _merge(checks, peeks)
                return _merge(checks, [await self._arun(g) for g in groups])
        return await self._arun(checks)

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """``decide_with_shadow`` on ``redis.asyncio``."""
        if not shadow:
            return await self.adecide(checks), None
        if not checks:
            return _EMPTY, await self.adecide(shadow)
        both = checks + shadow
        if self._cluster and len(self._slot_groups(both)) > 1:
            return await self.adecide(checks), await self.adecide(shadow)
        raw = await self._araw(both, split=len(checks) + 1)
        return self._decode_pair(both, len(checks), raw)

    def close(self) -> None:
        """Close the sync client's connections (and its sentinels', if any)."""
        client = self._client
        pool = getattr(client, "connection_pool", None)
        if isinstance(client, Redis) and pool is not None:
            for watcher in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
                watcher.close()
            pool.disconnect()
        client.close()

    async def aclose(self) -> None:
        """Close this loop's async client's connections (for tests and shutdown)."""
        client, self._aclient = self._aclient, None
        if client is None:
            return
        for loop, made in list(self._aclients.items()):
            if made is client:
                del self._aclients[loop]
        if isinstance(client, AsyncRedis):
            pool = client.connection_pool
            for watcher in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
                await watcher.aclose()
            await client.aclose(close_connection_pool=True)
        else:
            await client.aclose()


def _merge(checks: tuple[LimitCheck, ...], parts: list[Decision]) -> Decision:
    """Join per-slot decisions back into one, outcomes in the order of ``checks``."""
    by_check = {id(o.check): o for p in parts for o in p.outcomes}
    outcomes = tuple(by_check[id(c)] for c in checks)
    return Decision(allowed=all(o.allowed for o in outcomes), outcomes=outcomes, backend="redis")
