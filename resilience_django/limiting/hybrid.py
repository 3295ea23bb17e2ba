"""Redis limits with automatic local fallback, guarded by a breaker of their own.

Every decision goes to Redis while Redis is healthy.  A call that fails
(refused, reset, timed out, error reply) or, on the sync path, answers slower
than the latency budget (``FALLBACK_LATENCY``, default 50 ms) counts as a
failure; after ``FAILURES`` (default 3) in a row the backend trips and every
decision is made by the in-process ``LocalLimiter`` at once.  "In a row"
counts only calls that started after the previous counted failure: the
calls in flight during one stall saw one failure, not many (see ``_failed``).  A failed call
still gets an answer: that request alone is decided locally, so a Redis
failure never raises out of ``decide``/``adecide`` and never becomes a 5xx.
No request waits longer than the budget for Redis: the sync clients' socket
timeouts are the budget, and each async call runs under the Redis limiter's
settling alarm at the budget.

Redis latency means Redis's latency.  On the async path the verdict is the
alarm's alone: an answer read before the alarm settles is a success however
long the await took, because on a busy worker the await includes the event
loop's lag (a reply that arrived in time waits for the loop), and that lag
is not Redis's.  The loop's lag is reported on its own
(``resilience_event_loop_lag_seconds``, ``loop_lag``) and never feeds the
fallback.

While falling back each process enforces its *share* of every global limit:
``1 / live instances``, where the live count comes from heartbeats kept in a
Redis sorted set while Redis is healthy (the last count seen is kept during
the outage).  ``FALLBACK = {"INSTANCES": n}`` fixes the count and
``{"SHARE": 0.25}`` the share.  A process that has never reached Redis knows
no count: without ``INSTANCES``/``SHARE`` it assumes ``UNKNOWN_INSTANCES``
(10), never that it is alone.

Double spending: a call that timed out may still run in Redis, while the
request is decided locally.  Every unit Redis admits is also charged to the
local limiter (against this process's share), so a local decision after a
timeout only admits what is left of this process's share in the window: the
units spent twice are bounded by ``share * limit - (units this process had
Redis admit in the window)`` per process and window, and are zero once a
process has used its share (``docs/fallback.md`` states the fleet bound).
And a rule Redis rejected for a client stays rejected in local decisions
until the ``retry_after`` Redis gave (``_local_decide``), so a timeout after
the limit is spent cannot admit a fresh local share on top of it.

A background probe thread (every ``PROBE_INTERVAL``, default 1 s, with ±20 %
jitter so a fleet does not probe in lockstep) heartbeats at once when it
starts and then while healthy, which also trips the backend when Redis dies
in a quiet moment, and probes while falling back; decisions return to Redis
after ``RECOVERY_PROBES`` (default 2) consecutive probes answered within
budget (while falling back the probe runs twice as often, so with the
defaults decisions are back on Redis about a second after it heals), so a
flapping Redis cannot flap decisions faster than the probe runs; the
recovering probe loads the limit script too, so the first decisions back on
a restarted Redis find it.  Every transition is logged at WARNING on
``resilience_django.limiting`` with ``extra`` fields and reported through
``resilience_limiter_fallback_active``; every Redis call's duration goes to
``resilience_limiter_backend_seconds``.
"""

from __future__ import annotations

import logging
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
from .decision import ALLOW_ALL, Decision, LimitCheck, RuleOutcome
from .fallback import FallbackSettings, parse_fallback_settings
from .health import register as _register_health
from .local import LocalLimiter
from .nodes import NodeHealth
from .redis import RedisLimiter, load_script
from .redis_conn import RedisSettings, make_sync_client, parse_redis_settings

__all__ = ["FallbackSettings", "HybridLimiter", "build_hybrid_limiter", "parse_fallback_settings"]

logger = logging.getLogger("resilience_django.limiting")

_perf = time.perf_counter
# The instance count a process assumes before it has ever counted the fleet
# (and with neither FALLBACK["INSTANCES"] nor ["SHARE"]): small enough that a
# fleet starting during an outage stays near its limits, never "alone".
UNKNOWN_INSTANCES = 10
# The most (rule, client) pairs remembered as exhausted by Redis; past it,
# expired ones are dropped, and if none has expired, all of them.
_MAX_EXHAUSTED = 10_000
_live_limiters: weakref.WeakSet[HybridLimiter] = weakref.WeakSet()


class HybridLimiter:
    """A ``Limiter`` on Redis that falls back to a ``LocalLimiter`` by itself."""

    __slots__ = (
        "__weakref__",
        "_budget",
        "_counted_at",
        "_exhausted",
        "_failures",
        "_fallback",
        "_hb_sha",
        "_hb_source",
        "_instance",
        "_last_error",
        "_last_latency",
        "_live",
        "_local",
        "_lock",
        "_nodes",
        "_probe",
        "_redis",
        "_settings",
        "_since",
        "_stop",
        "_successes",
        "_warm",
        "heartbeat_key",
    )

    def __init__(
        self,
        redis: RedisLimiter,
        local: LocalLimiter,
        *,
        budget: float = 0.050,
        settings: FallbackSettings | None = None,
        key_prefix: str = "rl",
        instance_id: str | None = None,
    ) -> None:
        self._redis = redis
        self._local = local
        self._budget = budget
        # The Redis limiter bounds each async call itself, with one timer; a
        # second asyncio.timeout around it here would only double the cost.
        redis.bound_async_calls(budget)
        self._settings = settings or FallbackSettings()
        self._instance = (
            instance_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.heartbeat_key = f"{key_prefix}:instances"
        self._hb_source, self._hb_sha = load_script("heartbeat.lua")
        self._lock = threading.Lock()
        self._fallback = False
        self._failures = 0
        # When the last failure was counted: calls already in flight then
        # saw the same stall and do not count again (see _failed).
        self._counted_at = float("-inf")
        # (rule name, client key) -> perf time until which Redis said the
        # rule has nothing left for that client (see _local_decide).
        self._exhausted: dict[tuple[str, str], float] = {}
        self._successes = 0
        # None until the first heartbeat has counted the fleet.
        self._live: int | None = None
        self._warm = False
        self._last_latency: float | None = None
        self._last_error: str | None = None
        self._since = time.time()
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None
        # Redis Cluster: one breaker per master (``nodes``), so a dead master
        # sends only its own slots' keys to local limiting.
        self._nodes = (
            NodeHealth(
                failures=self._settings.failures,
                recovery_probes=self._settings.recovery_probes,
                announce=self._announce_node,
            )
            if redis.cluster
            else None
        )
        _live_limiters.add(self)
        _register_health(self)

    @property
    def fallback_active(self) -> bool:
        """Decisions are (at least partly) local: the backend, or on a cluster a master, is down."""
        return self._fallback or (self._nodes is not None and bool(self._nodes.down))

    @property
    def share(self) -> float:
        """The fraction of each global limit this process enforces while falling back."""
        s = self._settings
        if s.share is not None:
            return s.share
        if s.instances is not None:
            return 1.0 / s.instances
        return 1.0 / (UNKNOWN_INSTANCES if self._live is None else self._live)

    # -- deciding -----------------------------------------------------------------

    def decide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """Decide on Redis, or locally while Redis is unhealthy; never raises for Redis."""
        if not checks:
            return ALLOW_ALL
        if self._fallback:
            return self._local_decide(checks)
        nodes = self._nodes
        if nodes is not None and nodes.down and self._redis.node_of(checks) in nodes.down:
            return self._local_decide(checks)
        if self._probe is None:
            self._start_probe()
            if not self._warm_up():
                return self._local_decide(checks)
        start = _perf()
        try:
            decision = self._redis.decide(checks)
        except Exception as exc:  # any failure of the backend means "decide locally"
            self._failed(f"{type(exc).__name__}: {exc}", start, checks=checks)
            return self._local_decide(checks)
        self._answered(_perf() - start, start, checks)
        if decision.allowed:
            self._charge_all(checks)
        else:
            self._note_rejection(decision)
        return decision

    async def adecide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """``decide`` on ``redis.asyncio``, each call bounded by the budget."""
        if not checks:
            return ALLOW_ALL
        if self._fallback:
            return self._local_decide(checks)
        nodes = self._nodes
        if (
            nodes is not None
            and nodes.down
            and self._redis.node_of(checks, asynchronous=True) in nodes.down
        ):
            return self._local_decide(checks)
        if self._probe is None:
            self._start_probe()
        start = _perf()
        try:
            decision = await self._redis.adecide(checks)
        except Exception as exc:  # CancelledError is a BaseException and propagates
            self._failed(f"{type(exc).__name__}: {exc}", start, checks=checks, asynchronous=True)
            return self._local_decide(checks)
        # Answered before the settling alarm: in time, whatever the loop's lag.
        self._answered_async(_perf() - start, checks)
        if decision.allowed:
            self._charge_all(checks)
        else:
            self._note_rejection(decision)
        return decision

    def decide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """Enforced and shadow checks in one Redis call (or locally), never raising for Redis."""
        if not shadow:
            return self.decide(checks), None
        if self._fallback:
            return self._local_pair(checks, shadow)
        if self._probe is None:
            self._start_probe()
            if not self._warm_up():
                return self._local_pair(checks, shadow)
        start = _perf()
        try:
            pair = self._redis.decide_with_shadow(checks, shadow)
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}", start, checks=checks + shadow)
            return self._local_pair(checks, shadow)
        self._answered(_perf() - start, start, checks + shadow)
        self._charge(checks, shadow, pair)
        return pair

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        if not shadow:
            return await self.adecide(checks), None
        if self._fallback:
            return self._local_pair(checks, shadow)
        if self._probe is None:
            self._start_probe()
        start = _perf()
        try:
            pair = await self._redis.adecide_with_shadow(checks, shadow)
        except Exception as exc:
            self._failed(
                f"{type(exc).__name__}: {exc}", start, checks=checks + shadow, asynchronous=True
            )
            return self._local_pair(checks, shadow)
        self._answered_async(_perf() - start, checks + shadow)
        self._charge(checks, shadow, pair)
        return pair

    def _local_pair(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        return (self._local_decide(checks) if checks else ALLOW_ALL), self._local_decide(shadow)

    def _charge(
        self,
        checks: tuple[LimitCheck, ...],
        shadow: tuple[LimitCheck, ...],
        pair: tuple[Decision, Decision | None],
    ) -> None:
        """``_charge_all`` for each group of a shadow pair that Redis admitted."""
        if checks:
            if pair[0].allowed:
                self._charge_all(checks)
            else:
                self._note_rejection(pair[0])
        if pair[1] is not None:
            if pair[1].allowed:
                self._charge_all(shadow)
            else:
                self._note_rejection(pair[1])

    def _charge_all(self, checks: tuple[LimitCheck, ...]) -> None:
        """Charge what Redis admitted to the local share (see the module docstring).

        Rule by rule, with the local limiter's ``admit`` (the same state and
        consumption as a one-check ``decide``, without building a decision
        nobody reads): Redis has admitted them all already, so no
        all-or-nothing is needed, and a rule whose share is spent stays spent
        without holding back the others.
        """
        share, admit = self.share, self._local.admit
        for check in checks:
            admit(check.policy, check.key, check.cost, share)

    def _note_rejection(self, decision: Decision) -> None:
        """Remember, until its ``retry_after``, each rule Redis found exhausted.

        Rejections only: the admitted path pays nothing for it.
        """
        exhausted = self._exhausted
        if len(exhausted) >= _MAX_EXHAUSTED:
            now = _perf()
            for key in [k for k, until in exhausted.items() if until <= now]:
                del exhausted[key]
            if len(exhausted) >= _MAX_EXHAUSTED:
                exhausted.clear()
        now = _perf()
        for outcome in decision.outcomes:
            if not outcome.allowed and outcome.retry_after > 0:
                check = outcome.check
                exhausted[check.policy.name, check.key] = now + outcome.retry_after

    def _local_decide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """Decide locally, but never admit what Redis said was exhausted.

        A rule Redis rejected for a client stays rejected here until the
        ``retry_after`` Redis gave: a call that times out after the limit is
        spent (or the fallback that follows) cannot admit a fresh local share
        on top of it.  Nothing local is consumed by such a rejection.
        """
        exhausted = self._exhausted
        if exhausted:
            now = _perf()
            for check in checks:
                until = exhausted.get((check.policy.name, check.key))
                if until is not None and until > now:
                    return _rejected(checks, check, until - now)
        return self._local.decide(checks, self.share)

    def _warm_up(self) -> bool:
        """Load the script before the first sync decision; False if Redis did not answer.

        A failure counts like a failed decision, and that first decision is
        made locally rather than asking Redis a second time.
        """
        if self._warm:
            return True
        start = _perf()
        try:
            self._redis.warm_up()
        except Exception as exc:
            self._failed(f"warm-up: {type(exc).__name__}: {exc}", start)
            return False
        self._warm = True
        return True

    def _answered_async(self, elapsed: float, checks: tuple[LimitCheck, ...]) -> None:
        # No "slow answer" verdict from the wall clock here: ``elapsed``
        # includes the loop's lag, and the alarm already judged Redis.
        self._last_latency = elapsed
        metrics.limiter_backend_seconds(elapsed)
        if self._failures:
            self._failures = 0
        nodes = self._nodes
        if nodes is not None and nodes.suspects:
            nodes.answered(self._redis.node_of(checks, asynchronous=True))

    def _answered(self, elapsed: float, start: float, checks: tuple[LimitCheck, ...]) -> None:
        self._last_latency = elapsed
        metrics.limiter_backend_seconds(elapsed)
        if elapsed > self._budget:
            self._failed(f"slow answer ({elapsed * 1000:.1f} ms)", start, checks=checks)
            return
        if self._failures:
            self._failures = 0
        nodes = self._nodes
        if nodes is not None and nodes.suspects:
            nodes.answered(self._redis.node_of(checks))

    def _failed(
        self,
        reason: str,
        start: float,
        *,
        decision: bool = True,
        checks: tuple[LimitCheck, ...] = (),
        asynchronous: bool = False,
    ) -> None:
        """Count a failed or slow call that started at ``start`` (``perf_counter``).

        Calls that were already under way when the last failure was counted
        saw the same stall: under 64 concurrent requests one 60 ms hiccup
        would otherwise be 64 "consecutive" failures and trip at once.  So
        ``FAILURES`` counts failures of calls that started after the previous
        counted one: a Redis that stays slow or dead still trips after
        ``FAILURES`` budgets, a single hiccup does not.  Each failed call is
        still decided locally.

        On a cluster, a failure is the failure of the master that holds the
        request's slot (``checks``) and counts toward that node's breaker only.
        """
        now = _perf()
        elapsed = now - start
        metrics.limiter_backend_seconds(elapsed)
        if decision:
            metrics.limiter_backend_failure()
        nodes = self._nodes
        if nodes is not None and checks:
            node = self._redis.node_of(checks, asynchronous=asynchronous)
            if node is not None:
                self._last_error = f"{node}: {reason}"
                self._last_latency = elapsed
                nodes.failed(node, start, self._redis.slot_key(checks))
                return
        with self._lock:
            self._last_error = reason
            self._last_latency = elapsed
            if start < self._counted_at:
                return
            self._counted_at = now
            self._failures += 1
            if self._fallback or self._failures < self._settings.failures:
                return
            self._fallback = True
            self._successes = 0
            self._since = time.time()
        self._announce(True, reason, elapsed)

    def _recover(self, elapsed: float) -> None:
        with self._lock:
            if not self._fallback:
                return
            self._fallback = False
            self._failures = 0
            self._since = time.time()
        self._announce(
            False, f"{self._settings.recovery_probes} probes answered in budget", elapsed
        )

    def _announce_node(self, active: bool, reason: str, elapsed: float) -> None:
        """A cluster master went down or came back (``NodeHealth``)."""
        self._announce(active, reason, elapsed, gauge=active or self.fallback_active)

    def _announce(
        self, active: bool, reason: str, elapsed: float, *, gauge: bool | None = None
    ) -> None:
        metrics.limiter_fallback_active(active if gauge is None else gauge, reason=reason)
        logger.warning(
            "Distributed limits %s: %s",
            "falling back to local limits" if active else "back on Redis",
            reason,
            extra={
                "limiter_backend": "local" if active else "redis",
                "fallback_active": active,
                "reason": reason,
                "latency_ms": round(elapsed * 1000, 3),
                "live_instances": self._live,
                "share": self.share,
            },
        )

    # -- probing ------------------------------------------------------------------

    def _start_probe(self) -> None:
        with self._lock:
            if self._probe is not None:
                return
            self._stop.clear()
            # The thread holds the limiter only weakly, so a limiter dropped by
            # a settings rebuild is collected and its probe ends by itself.
            thread = threading.Thread(
                target=_probe_loop,
                args=(weakref.ref(self), self._stop, self._settings.probe_interval),
                name="resilience-redis-probe",
                daemon=True,
            )
            self._probe = thread
        thread.start()

    def probe(self, *, judge: bool = True) -> bool:
        """Heartbeat once; count the answer toward tripping or recovering.

        Runs on the probe thread; public so tests and operators can force one.
        ``judge=False`` (the probe thread's first, at start) only counts the
        fleet: the decisions under way judge Redis by themselves.
        """
        client = self._redis.client
        ttl_ms = str(int(self._settings.heartbeat_ttl * 1000))
        start = _perf()
        try:
            try:
                live = client.evalsha(self._hb_sha, 1, self.heartbeat_key, self._instance, ttl_ms)
            except NoScriptError:
                client.script_load(self._hb_source)
                live = client.evalsha(self._hb_sha, 1, self.heartbeat_key, self._instance, ttl_ms)
        except Exception as exc:  # the probe's whole point is to survive Redis failing
            elapsed = _perf() - start
            self._successes = 0
            self._probe_nodes()
            # On a cluster the heartbeat's node is one master among several:
            # its failure is that node's business (the decisions tell).
            if judge and self._nodes is None:
                self._failed(f"probe: {type(exc).__name__}: {exc}", start, decision=False)
            return False
        elapsed = _perf() - start
        self._probe_nodes()
        if not judge:
            self._live = max(1, int(live))
            return True
        if elapsed > self._budget and self._nodes is None:
            self._successes = 0
            self._failed(f"probe: slow answer ({elapsed * 1000:.1f} ms)", start, decision=False)
            return False
        self._last_latency = elapsed
        self._live = max(1, int(live))
        if self._fallback:
            self._successes += 1
            if self._successes >= self._settings.recovery_probes:
                # A restarted Redis has no scripts: load it here, off the
                # request path, so the first decisions back find it.
                try:
                    self._redis.warm_up()
                except Exception as exc:
                    self._successes = 0
                    self._failed(f"probe: {type(exc).__name__}: {exc}", start, decision=False)
                    return False
                self._recover(elapsed)
        else:
            self._failures = 0
        return True

    def _probe_nodes(self) -> None:
        nodes = self._nodes
        if nodes is not None and nodes.down:
            nodes.probe(self._redis.client, self._budget)

    def close(self) -> None:
        """Stop the probe thread and close Redis connections."""
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
        latency = self._last_latency
        return {
            "backend": "redis",
            "healthy": not self.fallback_active,
            "fallback_active": self.fallback_active,
            "last_latency_ms": None if latency is None else round(latency * 1000, 3),
            "live_instances": self._live,
            "share": self.share,
            "consecutive_failures": self._failures,
            "last_error": self._last_error,
            "since": self._since,
            "budget_ms": self._budget * 1000,
            **(self._nodes.health() if self._nodes is not None else {}),
        }


def _rejected(checks: tuple[LimitCheck, ...], spent: LimitCheck, wait: float) -> Decision:
    """A local rejection by ``spent``, which Redis found exhausted ``wait`` seconds more."""
    outcomes = tuple(
        RuleOutcome(c, False, 0, wait, wait) if c is spent else RuleOutcome(c, True, 0, 0.0, 0.0)
        for c in checks
    )
    return Decision(False, outcomes, "local")


def _probe_loop(ref: weakref.ref[HybridLimiter], stop: threading.Event, interval: float) -> None:
    # Count the fleet at once: until then the share is a guess.
    limiter = ref()
    if limiter is None:
        return
    limiter.probe(judge=False)
    del limiter
    while True:
        limiter = ref()
        if limiter is None:
            return
        # Twice as often while falling back, so RECOVERY_PROBES (2) good
        # answers bring decisions back within about one interval.
        wait = interval / 2 if limiter.fallback_active else interval
        del limiter
        if stop.wait(wait * random.uniform(0.8, 1.2)):
            return
        limiter = ref()
        if limiter is None:
            return
        limiter.probe()
        del limiter


def _after_fork_in_child() -> None:
    # Threads do not survive fork (gunicorn --preload): let the next decision
    # in the child start its own probe.
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
    """Build the ``BACKEND: "redis"`` limiter from the ``RESILIENCE`` setting's parts.

    ``redis`` and ``fallback`` are the raw ``REDIS``/``FALLBACK`` dicts or their
    parsed forms.  Connects lazily: building never touches the network.
    """
    redis_settings = (
        redis
        if isinstance(redis, RedisSettings)
        else parse_redis_settings(redis, budget=fallback_latency)
    )
    fallback_settings = (
        fallback if isinstance(fallback, FallbackSettings) else parse_fallback_settings(fallback)
    )
    limiter = RedisLimiter(make_sync_client(redis_settings), settings=redis_settings)
    return HybridLimiter(
        limiter,
        local or LocalLimiter(),
        budget=fallback_latency,
        settings=fallback_settings,
        key_prefix=redis_settings.key_prefix,
    )
