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

import hashlib
from importlib import resources

from redis.crc import key_slot
from redis.exceptions import NoScriptError

from .decision import Algorithm, Decision, LimitCheck, Policy, RuleOutcome
from .redis_conn import AsyncClient, RedisSettings, SyncClient, make_async_client

__all__ = ["RedisLimiter", "load_script"]

_ALGO_CODES = {Algorithm.SLIDING_WINDOW: 1, Algorithm.TOKEN_BUCKET: 2, Algorithm.GCRA: 3}
_ALGO_TAGS = {Algorithm.SLIDING_WINDOW: "sw", Algorithm.TOKEN_BUCKET: "tb", Algorithm.GCRA: "gc"}
_MAX_RAW_KEY = 64
_EMPTY = Decision(allowed=True, outcomes=(), backend="redis")


def load_script(name: str) -> tuple[str, str]:
    """Return ``(source, sha1)`` of a script shipped in ``limiting/lua``."""
    source = resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")
    return source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _tag(client_key: str) -> str:
    if len(client_key) <= _MAX_RAW_KEY and "{" not in client_key and "}" not in client_key:
        return client_key
    return "h:" + hashlib.blake2b(client_key.encode(), digest_size=12).hexdigest()


class RedisLimiter:
    """A ``Limiter`` whose state lives in Redis; ``decide`` sync, ``adecide`` async.

    ``client`` serves ``decide``; ``adecide`` uses ``async_client`` or builds one
    from ``settings`` on first use in each event loop (an asyncio Redis client
    belongs to the loop that created it).
    """

    __slots__ = (
        "_aclient",
        "_aloop",
        "_args",
        "_client",
        "_cluster",
        "_prefix",
        "_settings",
        "_sha",
        "_source",
        "_suffix",
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
        prefix = (
            key_prefix if key_prefix is not None else (settings.key_prefix if settings else "rl")
        )
        self._prefix = prefix + ":{"
        if cluster is None:
            cluster = settings.cluster if settings is not None else False
        self._cluster = cluster
        self._source, self._sha = load_script("limit.lua")
        # Per-policy pieces of the key and the script arguments, computed once
        # per policy object rather than per request.
        self._suffix: dict[Policy, str] = {}
        self._args: dict[Policy, tuple[int, int, int, int]] = {}

    @property
    def client(self) -> SyncClient:
        return self._client

    # -- encoding -----------------------------------------------------------------

    def _policy_parts(self, policy: Policy) -> tuple[str, tuple[int, int, int, int]]:
        suffix = self._suffix.get(policy)
        if suffix is None:
            period_us = max(1, round(policy.rate.period * 1_000_000))
            suffix = f"}}:{policy.name}:{_ALGO_TAGS[policy.algorithm]}{period_us // 1000}"
            self._args[policy] = (
                _ALGO_CODES[policy.algorithm],
                policy.rate.limit,
                period_us,
                policy.capacity,
            )
            self._suffix[policy] = suffix
        return suffix, self._args[policy]

    def _encode(self, checks: tuple[LimitCheck, ...], commit: bool) -> list[str | int]:
        keys: list[str | int] = []
        args: list[str | int] = [1 if commit else 0]
        prefix = self._prefix
        for check in checks:
            suffix, policy_args = self._policy_parts(check.policy)
            keys.append(prefix + _tag(check.key) + suffix)
            args.extend(policy_args)
            args.append(check.cost)
        return ["EVALSHA", self._sha, len(checks), *keys, *args]

    @staticmethod
    def _decode(checks: tuple[LimitCheck, ...], raw: list[int]) -> Decision:
        outcomes = tuple(
            RuleOutcome(
                check=check,
                allowed=raw[1 + 4 * i] == 1,
                remaining=int(raw[2 + 4 * i]),
                reset_after=raw[3 + 4 * i] / 1_000_000,
                retry_after=raw[4 + 4 * i] / 1_000_000,
            )
            for i, check in enumerate(checks)
        )
        return Decision(allowed=raw[0] == 1, outcomes=outcomes, backend="redis")

    def _slot_groups(self, checks: tuple[LimitCheck, ...]) -> list[tuple[LimitCheck, ...]]:
        groups: dict[int, list[LimitCheck]] = {}
        for check in checks:
            groups.setdefault(key_slot(_tag(check.key).encode()), []).append(check)
        return [tuple(g) for g in groups.values()]

    # -- sync ---------------------------------------------------------------------

    def _run(self, checks: tuple[LimitCheck, ...], commit: bool = True) -> Decision:
        command = self._encode(checks, commit)
        try:
            raw = self._client.execute_command(*command)  # type: ignore[no-untyped-call]
        except NoScriptError:
            self._client.script_load(self._source)
            raw = self._client.execute_command(*command)  # type: ignore[no-untyped-call]
        return self._decode(checks, raw)

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

    # -- async --------------------------------------------------------------------

    def _async_client(self) -> AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._aclient is None or (self._aloop is not None and self._aloop is not loop):
            if self._settings is None:
                if self._aclient is None:
                    raise RuntimeError("RedisLimiter needs async_client or settings for adecide")
            else:
                self._aclient = make_async_client(self._settings)
        self._aloop = loop
        assert self._aclient is not None
        return self._aclient

    async def _arun(self, checks: tuple[LimitCheck, ...], commit: bool = True) -> Decision:
        client = self._async_client()
        command = self._encode(checks, commit)
        try:
            raw = await client.execute_command(*command)
        except NoScriptError:
            await client.script_load(self._source)
            raw = await client.execute_command(*command)
        return self._decode(checks, raw)

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

    def close(self) -> None:
        """Close the sync client's connections."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the async client's connections (for tests and shutdown)."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None


def _merge(checks: tuple[LimitCheck, ...], parts: list[Decision]) -> Decision:
    """Join per-slot decisions back into one, outcomes in the order of ``checks``."""
    by_check = {id(o.check): o for p in parts for o in p.outcomes}
    outcomes = tuple(by_check[id(c)] for c in checks)
    return Decision(allowed=all(o.allowed for o in outcomes), outcomes=outcomes, backend="redis")
