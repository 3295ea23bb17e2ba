"""Redis limits with automatic local fallback, guarded by a breaker of their own.

Every decision goes to Redis while Redis is healthy.  A call that fails
(refused, reset, timed out, error reply) or, on the sync path, answers slower
than the latency budget (``FALLBACK_LATENCY``, default 50 ms) counts as a
failure; after ``FAILURES`` (default 3) in a row the backend trips and every
decision is made by the in-process ``LocalLimiter`` at once.  A failed call
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
from .decision import ALLOW_ALL, Decision, LimitCheck
from .fallback import FallbackSettings, parse_fallback_settings
from .health import register as _register_health
from .local import LocalLimiter
from .redis import RedisLimiter, load_script
from .redis_conn import RedisSettings, make_sync_client, parse_redis_settings

__all__ = ["FallbackSettings", "HybridLimiter", "build_hybrid_limiter", "parse_fallback_settings"]

logger = logging.getLogger("resilience_django.limiting")

_perf = time.perf_counter
# The instance count a process assumes before it has ever counted the fleet
# (and with neither FALLBACK["INSTANCES"] nor ["SHARE"]): small enough that a
# fleet starting during an outage stays near its limits, never "alone".
UNKNOWN_INSTANCES = 10
_live_limiters: weakref.WeakSet[HybridLimiter] = weakref.WeakSet()


class HybridLimiter:
    """A ``Limiter`` on Redis that falls back to a ``LocalLimiter`` by itself."""

    __slots__ = (
        "__weakref__",
        "_budget",
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
        self._successes = 0
        # None until the first heartbeat has counted the fleet.
        self._live: int | None = None
        self._warm = False
        self._last_latency: float | None = None
        self._last_error: str | None = None
        self._since = time.time()
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None
        _live_limiters.add(self)
        _register_health(self)

    @property
    def fallback_active(self) -> bool:
        return self._fallback

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
            return self._local.decide(checks, self.share)
        if self._probe is None:
            self._start_probe()
            if not self._warm_up():
                return self._local.decide(checks, self.share)
        start = _perf()
        try:
            decision = self._redis.decide(checks)
        except Exception as exc:  # any failure of the backend means "decide locally"
            self._failed(f"{type(exc).__name__}: {exc}", _perf() - start)
            return self._local.decide(checks, self.share)
        self._answered(_perf() - start)
        if decision.allowed:
            self._charge_all(checks)
        return decision

    async def adecide(self, checks: tuple[LimitCheck, ...]) -> Decision:
        """``decide`` on ``redis.asyncio``, each call bounded by the budget."""
        if not checks:
            return ALLOW_ALL
        if self._fallback:
            return await self._local.adecide(checks, self.share)
        if self._probe is None:
            self._start_probe()
        start = _perf()
        try:
            decision = await self._redis.adecide(checks)
        except Exception as exc:  # CancelledError is a BaseException and propagates
            import sys, asyncio as _a, traceback as _t
            from .. import loop_lag as _ll
            _s = _ll.watch()
            print("DBGFAIL", os.getpid(), round((_perf() - start)*1000,1), repr(exc), "lag", _s.lag, "tasks", len(_a.all_tasks()), file=sys.stderr)
            _t.print_exc(limit=8)
            self._failed(f"{type(exc).__name__}: {exc}", _perf() - start)
            return self._local.decide(checks, self.share)
        # Answered before the settling alarm: in time, whatever the loop's lag.
        self._answered_async(_perf() - start)
        if decision.allowed:
            self._charge_all(checks)
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
            self._failed(f"{type(exc).__name__}: {exc}", _perf() - start)
            return self._local_pair(checks, shadow)
        self._answered(_perf() - start)
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
            self._failed(f"{type(exc).__name__}: {exc}", _perf() - start)
            return self._local_pair(checks, shadow)
        self._answered_async(_perf() - start)
        self._charge(checks, shadow, pair)
        return pair

    def _local_pair(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        share = self.share
        first = self._local.decide(checks, share) if checks else ALLOW_ALL
        return first, self._local.decide(shadow, share)

    def _charge(
        self,
        checks: tuple[LimitCheck, ...],
        shadow: tuple[LimitCheck, ...],
        pair: tuple[Decision, Decision | None],
    ) -> None:
        """``_charge_all`` for each group of a shadow pair that Redis admitted."""
        if checks and pair[0].allowed:
            self._charge_all(checks)
        if pair[1] is not None and pair[1].allowed:
            self._charge_all(shadow)

    def _charge_all(self, checks: tuple[LimitCheck, ...]) -> None:
        """Charge what Redis admitted to the local share (see the module docstring).

        Rule by rule, on the local limiter's one-check fast path: Redis has
        admitted them all already, so no all-or-nothing is needed, and a rule
        whose share is spent stays spent without holding back the others.
        """
        share, decide = self.share, self._local.decide
        if len(checks) == 1:
            decide(checks, share)
            return
        for check in checks:
            decide((check,), share)

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
            self._failed(f"warm-up: {type(exc).__name__}: {exc}", _perf() - start)
            return False
        self._warm = True
        return True

    def _answered_async(self, elapsed: float) -> None:
        # No "slow answer" verdict from the wall clock here: ``elapsed``
        # includes the loop's lag, and the alarm already judged Redis.
        self._last_latency = elapsed
        metrics.limiter_backend_seconds(elapsed)
        if self._failures:
            self._failures = 0

    def _answered(self, elapsed: float) -> None:
        self._last_latency = elapsed
        metrics.limiter_backend_seconds(elapsed)
        if elapsed > self._budget:
            self._failed(f"slow answer ({elapsed * 1000:.1f} ms)", elapsed)
        elif self._failures:
            self._failures = 0

    def _failed(self, reason: str, elapsed: float) -> None:
        metrics.limiter_backend_seconds(elapsed)
        with self._lock:
            self._last_error = reason
            self._last_latency = elapsed
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

    def _announce(self, active: bool, reason: str, elapsed: float) -> None:
        metrics.limiter_fallback_active(active, reason=reason)
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
            if judge:
                self._failed(f"probe: {type(exc).__name__}: {exc}", elapsed)
            return False
        elapsed = _perf() - start
        if not judge:
            self._live = max(1, int(live))
            return True
        if elapsed > self._budget:
            self._successes = 0
            self._failed(f"probe: slow answer ({elapsed * 1000:.1f} ms)", elapsed)
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
                    self._failed(f"probe: {type(exc).__name__}: {exc}", _perf() - start)
                    return False
                self._recover(elapsed)
        else:
            self._failures = 0
        return True

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
            "healthy": not self._fallback,
            "fallback_active": self._fallback,
            "last_latency_ms": None if latency is None else round(latency * 1000, 3),
            "live_instances": self._live,
            "share": self.share,
            "consecutive_failures": self._failures,
            "last_error": self._last_error,
            "since": self._since,
            "budget_ms": self._budget * 1000,
        }


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
        wait = interval / 2 if limiter._fallback else interval
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
