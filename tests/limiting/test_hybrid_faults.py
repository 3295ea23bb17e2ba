"""Fault injection against real processes: kill -9 Redis, slow it down, bring it back.

Real time on purpose: these tests are about sockets and timeouts, which an
injected clock cannot fake.  Each starts its own redis-server (and a TCP proxy
in front of it where latency is injected) and stops it by PID.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer
from tests.utils.tcp_proxy import TcpProxy
from tests.utils.waiting import holds_within

pytestmark = pytest.mark.redis

BUDGET = 0.05
CHECKS = (
    LimitCheck(Policy("wide", Rate(10**9, 3600.0), Algorithm.SLIDING_WINDOW), "ip:1"),
    LimitCheck(Policy("narrow", Rate(10**9, 60.0), Algorithm.GCRA), "ip:1"),
)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    with TcpProxy(server.port) as p:
        yield p


def make(url: str) -> HybridLimiter:
    # Default FALLBACK settings: 3 failures, 1 s probe, 2 recovery probes.
    return build_hybrid_limiter({"URL": url}, fallback_latency=BUDGET, local=LocalLimiter())


def assert_cut_at_budget(latencies: list[float], fault: float = 0.2) -> None:
    """The calls that waited on Redis gave up near the budget, none waited for the fault.

    The median of those calls holds the budget, not their maximum: on a loaded 2-core
    machine any one call may lose the CPU for tens of ms (p99 of 128 ms seen at load
    10).  Under two budgets, so a call that waits twice still fails."""
    waited = sorted(lat for lat in latencies if lat > BUDGET / 2)
    assert not waited or statistics.median(waited) < 2 * BUDGET, waited
    assert max(latencies) < fault, waited


@dataclass
class Recorder:
    """Decisions made by a few threads: (start, latency, backend); errors kept apart."""

    samples: list[tuple[float, float, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def hammer(self, limiter: HybridLimiter) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                backend = limiter.decide(CHECKS).backend
            except BaseException as exc:  # the point is that there are none
                self.errors.append(exc)
                continue
            self.samples.append((start, time.monotonic() - start, backend))
            time.sleep(0.001)

    def backends_between(self, t0: float, t1: float) -> set[str]:
        return {b for s, _, b in self.samples if t0 <= s < t1}

    def first_after(self, t0: float, backend: str) -> float:
        return min(s for s, _, b in self.samples if s >= t0 and b == backend)


def test_kill_9_under_load_goes_local_at_once_and_restart_returns_within_2s(
    server: RedisServer,
) -> None:
    limiter = make(server.url)
    recorder = Recorder()
    threads = [threading.Thread(target=recorder.hammer, args=(limiter,)) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        server.kill()
        time.sleep(1.0)
        restarted_at = time.monotonic()
        server.start()
        holds_within(lambda: recorder.backends_between(restarted_at, 1e18) >= {"redis"}, 4.0)
        time.sleep(0.2)
    finally:
        recorder.stop.set()
        for t in threads:
            t.join()
        limiter.close()

    assert recorder.errors == []
    # Everything finished before the kill ran on Redis (in-flight ones may not).
    assert {b for s, lat, b in recorder.samples if s + lat < killed_at} == {"redis"}
    # Within one budget of the kill every decision is local.
    assert recorder.backends_between(killed_at + BUDGET, restarted_at) == {"local"}
    assert_cut_at_budget([lat for s, lat, _ in recorder.samples if s >= killed_at])
    assert recorder.first_after(restarted_at, "redis") - restarted_at < 2.0


def test_200ms_latency_falls_back_within_budget_and_recovers_when_it_goes(
    proxy: TcpProxy,
) -> None:
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    recorder = Recorder()
    thread = threading.Thread(target=recorder.hammer, args=(limiter,))
    try:
        thread.start()
        time.sleep(0.3)
        slowed_at = time.monotonic()
        proxy.latency = 0.2
        time.sleep(1.5)
        healed_at = time.monotonic()
        proxy.latency = 0.0
        holds_within(lambda: recorder.backends_between(healed_at, 1e18) >= {"redis"}, 4.0)
    finally:
        recorder.stop.set()
        thread.join()
        limiter.close()

    assert recorder.errors == []
    slow = sorted(lat for s, lat, _ in recorder.samples if slowed_at <= s < healed_at)
    assert len(slow) > 100
    assert_cut_at_budget(slow)  # no decision waited for the slow Redis
    assert "local" in recorder.backends_between(slowed_at, healed_at)
    assert recorder.first_after(healed_at, "redis") - healed_at < 2.5


async def test_async_200ms_latency_falls_back_within_budget(proxy: TcpProxy) -> None:
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert (await limiter.adecide(CHECKS)).backend == "redis"
        proxy.latency = 0.2
        latencies, backends = [], []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            start = time.monotonic()
            backends.append((await limiter.adecide(CHECKS)).backend)
            latencies.append(time.monotonic() - start)
            await asyncio.sleep(0.001)
        assert_cut_at_budget(latencies)
        assert backends[-1] == "local" and limiter.fallback_active
        proxy.latency = 0.0
        deadline = time.monotonic() + 2.5
        while limiter.fallback_active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert (await limiter.adecide(CHECKS)).backend == "redis"
    finally:
        await limiter.aclose()


def test_cut_connections_are_survived_without_fallback(proxy: TcpProxy) -> None:
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert limiter.decide(CHECKS).backend == "redis"
        proxy.cut()
        # One call fails on the dead socket (decided locally); the next reconnects.
        backends = [limiter.decide(CHECKS).backend for _ in range(3)]
        assert backends[-1] == "redis" and not limiter.fallback_active
    finally:
        limiter.close()


def test_black_holed_redis_costs_no_request_more_than_the_budget(proxy: TcpProxy) -> None:
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert limiter.decide(CHECKS).backend == "redis"
        proxy.blackhole = True
        latencies = []
        for _ in range(20):
            start = time.monotonic()
            assert limiter.decide(CHECKS).backend == "local"
            latencies.append(time.monotonic() - start)
        assert_cut_at_budget(latencies)
        assert limiter.fallback_active
    finally:
        limiter.close()


def test_script_flush_under_load_is_survived_on_redis(server: RedisServer) -> None:
    limiter = make(server.url)
    try:
        assert limiter.decide(CHECKS).backend == "redis"
        limiter._redis.client.script_flush()
        assert limiter.decide(CHECKS).backend == "redis"
        assert limiter.health()["consecutive_failures"] == 0
    finally:
        limiter.close()


# -- the event loop's lag is not Redis's latency ------------------------------------


async def _hammer_async(
    limiter: HybridLimiter, seconds: float, *, block: float = 0.0, tasks: int = 16
) -> tuple[list[str], bool]:
    """``tasks`` coroutines deciding for ``seconds``; optionally the loop blocked
    ``block`` seconds at a time while they wait.  Returns the backends and
    whether the fallback was ever active."""
    backends: list[str] = []
    tripped = False
    end = time.monotonic() + seconds

    async def decide() -> None:
        nonlocal tripped
        while time.monotonic() < end:
            backends.append((await limiter.adecide(CHECKS)).backend)
            tripped = tripped or limiter.fallback_active
            # A local decision never yields: let the others run, as a server would.
            await asyncio.sleep(0)

    async def busy_view() -> None:
        # A worker busy with something else (a slow sync call on the loop,
        # a large response to encode) while decisions are in flight.
        while time.monotonic() < end:
            await asyncio.sleep(0.01)
            time.sleep(block)

    jobs = [decide() for _ in range(tasks)]
    if block:
        jobs.append(busy_view())
    await asyncio.gather(*jobs)
    return backends, tripped


async def test_a_blocked_event_loop_does_not_send_decisions_to_local_limits(
    server: RedisServer,
) -> None:
    from resilience_django import loop_lag

    limiter = make(server.url)
    sampler = loop_lag.watch(asyncio.get_running_loop())
    try:
        assert (await limiter.adecide(CHECKS)).backend == "redis"
        backends, tripped = await _hammer_async(limiter, 2.0, block=0.2)
        # Redis answered in microseconds; only the loop was late reading it.
        assert not tripped and set(backends) == {"redis"}
        assert limiter.health()["consecutive_failures"] == 0
        # The lag is reported on its own (docs/fallback.md), by one sampler per loop.
        assert loop_lag.watch(asyncio.get_running_loop()) is sampler and sampler.lag > 0.0
    finally:
        await limiter.aclose()


async def test_redis_slowed_by_100ms_still_falls_back_on_the_async_path(
    proxy: TcpProxy,
) -> None:
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert (await limiter.adecide(CHECKS)).backend == "redis"
        proxy.latency = 0.1
        start = time.monotonic()
        backends, tripped = await _hammer_async(limiter, 1.0, tasks=4)
        assert tripped and backends[-1] == "local"
        proxy.latency = 0.0
        deadline = time.monotonic() + 4.0
        while limiter.fallback_active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert (await limiter.adecide(CHECKS)).backend == "redis"
        assert time.monotonic() - start < 6.0
    finally:
        await limiter.aclose()


# -- cold start: connecting and loading the script are not a decision's work --------


async def test_a_fresh_worker_decides_on_redis_even_when_connecting_takes_longer_than_the_budget(
    proxy: TcpProxy,
) -> None:
    proxy.connect_latency = 0.08  # the handshake's reply, past the 50 ms budget
    limiter = make(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        decision = await limiter.adecide(CHECKS)
        assert decision.backend == "redis"
        assert limiter.health()["consecutive_failures"] == 0
    finally:
        await limiter.aclose()


def test_the_script_is_loaded_before_the_first_sync_decision(server: RedisServer) -> None:
    import redis

    from resilience_django.limiting.redis import load_script

    admin = redis.Redis(port=server.port)
    admin.script_flush()
    admin.config_resetstat()
    # The probe thread's heartbeat script is there already: a NOSCRIPT below
    # can only be the limit script's.
    admin.script_load(load_script("heartbeat.lua")[0])
    limiter = make(server.url)
    try:
        assert limiter.decide(CHECKS).backend == "redis"
        assert admin.info("errorstats").get("errorstat_NOSCRIPT") is None
    finally:
        limiter.close()
        admin.close()
