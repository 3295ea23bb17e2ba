"""Redis limits with automatic local fallback, guarded by the core breaker (docs/fallback.md).

The caller that makes a transition announces it (``Breaker.record_failure`` returns it).
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from redis.exceptions import NoScriptError

from .. import metrics
from ..breakers.state import Phase
from . import health as backend_health
from .decision import ALLOW_ALL, Decision, LimitCheck, RuleOutcome
from .fallback import FallbackSettings, parse_fallback_settings
from .local import LocalLimiter
from .nodes import NodeBreakers
from .redis import Checks, Pair, RedisLimiter, load_script
from .redis_conn import RedisSettings, parse_redis_settings

__all__ = ["HybridLimiter", "build_hybrid_limiter"]

logger = logging.getLogger("resilience_django.limiting")

_perf = time.perf_counter
# The most (rule, client) pairs remembered as exhausted by Redis (_note_rejection).
_MAX_EXHAUSTED = 10_000
_live_limiters: weakref.WeakSet[HybridLimiter] = weakref.WeakSet()


class HybridLimiter:
    """A ``Limiter`` on Redis that falls back to a ``LocalLimiter`` by itself."""

    __slots__ = ("__weakref__", "_breaker", "_budget", "_counted_since", "_created", "_exhausted",
                 "_hb_sha", "_hb_source", "_instance", "_last_error", "_last_latency", "_live",
                 "_local", "_lock", "_nodes", "_probe", "_redis", "_settings", "_share", "_slow",
                 "_stop", "_successes", "_warm", "heartbeat_key")  # fmt: skip

    def __init__(
        self,
        redis: RedisLimiter,
        local: LocalLimiter,
        *,
        budget: float = 0.050,
        settings: FallbackSettings | None = None,
    ) -> None:
        self._redis = redis
        self._local = local
        self._budget = budget
        redis.bound_async_calls(budget)
        # Answered sync calls are judged by the socket timeouts, not the wall clock (which
        # counts the wait for the GIL): docs/fallback.md#busy-workers.
        self._slow = math.inf if redis.settings.socket_timeout <= budget else budget
        self._settings = settings = settings or FallbackSettings()
        self._instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.heartbeat_key = f"{redis.settings.key_prefix}:instances"
        self._hb_source, self._hb_sha = load_script("heartbeat.lua")
        self._lock = threading.Lock()
        self._breaker = settings.breaker("limiter:redis")
        self._nodes = NodeBreakers(settings, self._announce) if redis.cluster else None
        # (rule name, client key) -> perf time until which Redis said it is exhausted.
        self._exhausted: dict[tuple[str, str], float] = {}
        self._successes = 0  # good probes in a row while falling back
        self._live: int | None = None  # until the first heartbeat has counted the fleet
        # When the current unbroken run of heartbeats began (perf time; _count_share).
        self._counted_since: float | None = None
        self._share = settings.share_for(None)
        self._warm = False
        self._last_latency: float | None = None
        self._last_error: str | None = None
        self._created = time.time()
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None
        _live_limiters.add(self)
        backend_health.register(self)

    @property
    def fallback_active(self) -> bool:
        """Decisions are (at least partly) local: the backend, or on a cluster a master, is down."""
        return self._breaker.try_acquire() is None or bool(self._nodes and self._nodes.down)

    def decide(self, checks: Checks) -> Decision:
        """Decide on Redis, or locally while Redis is unhealthy; never raises for Redis."""
        if not checks:
            return ALLOW_ALL
        token = self._admit(checks, False)
        if token is not None:
            start = _perf()
            try:
                decision = self._redis.decide(checks)
            except Exception as exc:  # any failure of the backend means "decide locally"
                self._failed(_why(exc), start, token, checks)
            else:
                self._answered(start, token, checks, False, decision)
                return decision
        return self._local_decide(checks)

    async def adecide(self, checks: Checks) -> Decision:
        """``decide`` on ``redis.asyncio``, each call bounded by the budget."""
        if not checks:
            return ALLOW_ALL
        token = self._admit(checks, True)
        if token is not None:
            start = _perf()
            try:
                decision = await self._redis.adecide(checks)
            except Exception as exc:  # CancelledError is a BaseException and propagates
                self._failed(_why(exc), start, token, checks, True)
            else:
                self._answered(start, token, checks, True, decision)
                return decision
        return self._local_decide(checks)

    def decide_with_shadow(self, checks: Checks, shadow: Checks) -> Pair:
        """Enforced and shadow checks in one Redis call (or locally), never raising for Redis."""
        if not shadow:
            return self.decide(checks), None
        both = checks + shadow
        token = self._admit(both, False)
        if token is not None:
            start = _perf()
            try:
                pair = self._redis.decide_with_shadow(checks, shadow)
            except Exception as exc:
                self._failed(_why(exc), start, token, both)
            else:
                self._answered(start, token, both, False, None)
                return self._settle_pair(checks, shadow, pair)
        return (self._local_decide(checks) if checks else ALLOW_ALL), self._local_decide(shadow)

    async def adecide_with_shadow(self, checks: Checks, shadow: Checks) -> Pair:
        if not shadow:
            return await self.adecide(checks), None
        both = checks + shadow
        token = self._admit(both, True)
        if token is not None:
            start = _perf()
            try:
                pair = await self._redis.adecide_with_shadow(checks, shadow)
            except Exception as exc:
                self._failed(_why(exc), start, token, both, True)
            else:
                self._answered(start, token, both, True, None)
                return self._settle_pair(checks, shadow, pair)
        return (self._local_decide(checks) if checks else ALLOW_ALL), self._local_decide(shadow)

    def _admit(self, checks: Checks, asynchronous: bool) -> Phase | None:
        """The breaker's token for a Redis call, or ``None``: decide locally."""
        token = self._breaker.try_acquire()
        if token is None:
            return None
        down = self._nodes and self._nodes.down
        if down and self._redis.node_of(checks, asynchronous=asynchronous) in down:
            return None
        if self._probe is None:
            self._start_probe()
            # Load the script before the first sync decision; a failure sends it local.
            if not asynchronous and not self._warm:
                start = _perf()
                try:
                    self._redis.warm_up()
                except Exception as exc:
                    self._failed(f"warm-up: {_why(exc)}", start, token)
                    return None
                self._warm = True
        return token

    def _answered(
        self,
        start: float,
        token: Phase,
        checks: Checks,
        asynchronous: bool,
        decision: Decision | None,
    ) -> None:
        """Judge an answered call; with ``decision``, also settle it."""
        elapsed = _perf() - start
        # Async: no wall-clock verdict (it includes the loop's lag; the alarm judged Redis).
        if not asynchronous and elapsed > self._slow:
            self._failed(f"slow answer ({elapsed * 1000:.1f} ms)", start, token, checks)
        else:
            self._last_latency = elapsed
            metrics.limiter_backend_seconds(elapsed)
            if token.consecutive:  # the common case pays only this test
                self._breaker.record_success(token)
            nodes = self._nodes
            if nodes is not None and nodes.breakers:
                nodes.answered(self._redis.node_of(checks, asynchronous=asynchronous))
        if decision is not None:
            self._settle(checks, decision)

    def _failed(
        self,
        reason: str,
        start: float,
        token: Phase | None,
        checks: Checks = (),
        asynchronous: bool = False,
        *,
        decision: bool = True,
    ) -> None:
        """Count a failed or slow call that started at ``start`` (on a cluster: toward
        the breaker of the master holding the request's slot)."""
        elapsed = _perf() - start
        self._last_latency = elapsed
        metrics.limiter_backend_seconds(elapsed)
        if decision:
            metrics.limiter_backend_failure()
        nodes = self._nodes
        if nodes is not None and checks:
            node = self._redis.node_of(checks, asynchronous=asynchronous)
            if node is not None:
                self._last_error = f"{node}: {reason}"
                nodes.failed(node, elapsed, self._redis.slot_key(checks))
                return
        self._last_error = reason
        if token is not None and self._breaker.record_failure(token, elapsed) is not None:
            self._successes = 0
            self._announce(True, reason, elapsed)

    def _settle(self, checks: Checks, decision: Decision) -> None:
        """Charge what Redis admitted to the local share, or remember what it rejected."""
        if decision.allowed:
            share, admit = self._share, self._local.admit
            for check in checks:
                admit(check.policy, check.key, check.cost, share)
        else:
            self._note_rejection(decision)

    def _settle_pair(self, checks: Checks, shadow: Checks, pair: Pair) -> Pair:
        self._settle(checks, pair[0])  # no checks: an empty, allowed decision settles nothing
        if pair[1] is not None:
            self._settle(shadow, pair[1])
        return pair

    def _note_rejection(self, decision: Decision) -> None:
        """Remember, until its ``retry_after``, each rule Redis found exhausted (bounded)."""
        exhausted = self._exhausted
        now = _perf()
        if len(exhausted) >= _MAX_EXHAUSTED:
            for key in [k for k, until in exhausted.items() if until <= now]:
                del exhausted[key]
            if len(exhausted) >= _MAX_EXHAUSTED:
                exhausted.clear()
        for outcome in decision.outcomes:
            if not outcome.allowed and outcome.retry_after > 0:
                check = outcome.check
                exhausted[check.policy.name, check.key] = now + outcome.retry_after

    def _local_decide(self, checks: Checks) -> Decision:
        """Decide locally, rejecting what Redis found exhausted until its ``retry_after``
        (docs/fallback.md#double-spending-after-a-timeout)."""
        exhausted = self._exhausted
        if exhausted:
            now = _perf()
            for check in checks:
                if (until := exhausted.get((check.policy.name, check.key), -math.inf)) > now:
                    return _rejected(checks, check, until - now)
        return self._local.decide(checks, self._share)

    def _announce(self, active: bool, reason: str, elapsed: float) -> None:
        """The backend or a cluster master went down (``active``) or came back."""
        metrics.limiter_fallback_active(self.fallback_active, reason=reason)
        logger.warning(
            "Distributed limits %s: %s",
            "falling back to local limits" if active else "back on Redis", reason,
            extra={"limiter_backend": "local" if active else "redis", "fallback_active": active,
                   "reason": reason, "latency_ms": round(elapsed * 1000, 3),
                   "live_instances": self._live, "share": self._share},
        )  # fmt: skip

    def _start_probe(self) -> None:
        with self._lock:
            # Closed: a request that still holds this limiter must not bring the probe back.
            if self._probe is not None or self._stop.is_set():
                return
            # Held weakly: a limiter dropped by a settings rebuild is collected, its probe ends.
            args = (weakref.ref(self), self._stop, self._settings.probe_interval)
            thread = threading.Thread(target=_probe_loop, args=args, daemon=True,
                                      name="resilience-redis-probe")  # fmt: skip
            self._probe = thread
        thread.start()

    def probe(self, *, judge: bool = True) -> bool:
        """Heartbeat once and count the answer toward tripping or recovering; ``judge=False``
        (the thread's first) only counts the fleet: decisions under way judge Redis."""
        token = self._breaker.try_acquire()  # None: falling back
        ttl_ms = str(int(self._settings.heartbeat_ttl * 1000))
        args = (1, self.heartbeat_key, self._instance, ttl_ms)
        start = _perf()
        try:
            client = self._redis.client  # a cluster client is built (and connects) here
            try:
                live, added = client.evalsha(self._hb_sha, *args)
            except NoScriptError:
                client.script_load(self._hb_source)
                live, added = client.evalsha(self._hb_sha, *args)
        except Exception as exc:  # the probe's whole point is to survive Redis failing
            return self._probe_failed(f"probe: {_why(exc)}", start, token, judge)
        elapsed = _perf() - start
        # On a cluster the heartbeat's node is one master of several: the decisions judge it.
        if judge and elapsed > self._slow and self._nodes is None:
            msg = f"probe: slow answer ({elapsed * 1000:.1f} ms)"
            return self._probe_failed(msg, start, token, judge)
        self._probe_nodes()
        if added:  # not in the set: a first heartbeat, or the set was lost (FLUSHALL, failover)
            self._counted_since = None
        self._live = max(1, int(live))
        self._share = self._count_share(self._live)
        if not judge:
            return True
        self._last_latency = elapsed
        if token is not None:
            if token.consecutive:
                self._breaker.record_success(token)
            return True
        self._successes += 1
        if self._successes < self._settings.recovery_probes:
            return True
        # A restarted Redis has no scripts: load it here, off the request path.
        try:
            self._redis.warm_up()
        except Exception as exc:
            self._successes = 0
            self._failed(f"probe: {_why(exc)}", start, None, decision=False)
            return False
        reason = f"{self._settings.recovery_probes} probes answered in budget"
        if self._breaker.reset(reason) is not None:
            self._announce(False, reason, elapsed)
        return True

    def _count_share(self, live: int) -> float:
        """The share for ``live`` counted instances; a count younger than one HEARTBEAT_TTL
        may shrink it below an unknown count's, never grow it (docs/fallback.md#a-cold-fleet)."""
        settings, now = self._settings, _perf()
        since = self._counted_since
        if since is None:
            since = self._counted_since = now
        share = settings.share_for(live)
        if now - since < settings.heartbeat_ttl:
            share = min(share, settings.share_for(None))
        return share

    def _probe_failed(self, reason: str, start: float, token: Phase | None, judge: bool) -> bool:
        self._successes = 0
        self._counted_since = None  # its heartbeats may expire or be lost: young again
        self._probe_nodes()
        if judge and self._nodes is None:
            self._failed(reason, start, token, decision=False)
        return False

    def _probe_nodes(self) -> None:
        if self._nodes is not None and self._nodes.down:
            self._nodes.probe(self._redis.client, self._slow)

    def close(self) -> None:
        """Stop the probe thread and close Redis connections; health stops reporting on it."""
        backend_health.unregister(self)
        self._stop.set()
        probe, self._probe = self._probe, None
        if probe is not None and probe is not threading.current_thread():
            probe.join(timeout=2)
        self._redis.close()

    async def aclose(self) -> None:
        self.close()
        await self._redis.aclose()

    def health(self) -> dict[str, Any]:
        """What ``resilience_status`` and the dashboard show about the backend."""
        latency, token = self._last_latency, self._breaker.try_acquire()
        transition = self._breaker.last_transition
        return {
            "backend": "redis",
            "healthy": not self.fallback_active,
            "fallback_active": self.fallback_active,
            "last_latency_ms": None if latency is None else round(latency * 1000, 3),
            "live_instances": self._live,
            "share": self._share,
            "consecutive_failures": self._settings.failures if token is None else token.consecutive,
            "last_error": self._last_error,
            "since": self._created if transition is None else transition.at,
            "budget_ms": self._budget * 1000,
            **({"nodes_down": sorted(self._nodes.down)} if self._nodes is not None else {}),
        }


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _rejected(checks: Checks, spent: LimitCheck, wait: float) -> Decision:
    """A local rejection by ``spent``, which Redis found exhausted ``wait`` seconds more."""
    outcomes = tuple(
        RuleOutcome(c, False, 0, wait, wait) if c is spent else RuleOutcome(c, True, 0, 0.0, 0.0)
        for c in checks
    )
    return Decision(False, outcomes, "local")


def _probe_loop(ref: weakref.ref[HybridLimiter], stop: threading.Event, interval: float) -> None:
    judge = False  # the first heartbeat, at once, only counts the fleet: the share is a guess
    while (limiter := ref()) is not None:
        limiter.probe(judge=judge)
        # Twice as often while falling back: decisions are back within about one interval.
        wait = interval / 2 if limiter.fallback_active else interval
        del limiter  # held only during a probe: a dropped limiter is collected
        judge = True
        if stop.wait(wait * random.uniform(0.8, 1.2)):
            return


def _after_fork_in_child() -> None:
    # Threads do not survive fork (gunicorn --preload): the child's next decision starts one.
    for limiter in list(_live_limiters):
        limiter._probe = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def build_hybrid_limiter(
    redis: Mapping[str, Any] | RedisSettings | None,
    *,
    fallback_latency: float = 0.050,
    fallback: Mapping[str, Any] | FallbackSettings | None = None,
    local: LocalLimiter | None = None,
) -> HybridLimiter:
    """The ``BACKEND: "redis"`` limiter from ``REDIS``/``FALLBACK`` (raw or parsed); building
    never touches the network (a sync cluster client connects as it is built: at first use)."""
    if not isinstance(redis, RedisSettings):
        redis = parse_redis_settings(redis, budget=fallback_latency)
    if not isinstance(fallback, FallbackSettings):
        fallback = parse_fallback_settings(fallback)
    return HybridLimiter(
        RedisLimiter(settings=redis),
        local or LocalLimiter(),
        budget=fallback_latency,
        settings=fallback,
    )
