"""A healthy Redis that stalls for a moment: what the fleet-exactness e2e test found.

Each test starts its own redis-server and stalls it with SIGSTOP (its
sockets stay open, it just does not answer), then lets it go with SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.redis

# A stalled Redis is cut at the budget, whatever its size; a healthy one must
# answer within it even on a loaded machine, or the exact counts below go local.
BUDGET = 0.25


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    os.kill(srv.pid, signal.SIGCONT)
    srv.stop()


@pytest.fixture
def hybrid(server: RedisServer) -> Iterator[HybridLimiter]:
    limiter = build_hybrid_limiter(
        {"URL": server.url},
        fallback_latency=BUDGET,
        # A fixed instance count, and a probe that stays out of the way.
        fallback={"INSTANCES": 1, "PROBE_INTERVAL": "60s"},
        local=LocalLimiter(),
    )
    yield limiter
    limiter.close()


def _failures() -> float:
    return REGISTRY.get_sample_value("resilience_limiter_backend_failures_total") or 0.0


async def test_one_stall_seen_by_many_concurrent_calls_counts_as_one_failure(
    server: RedisServer, hybrid: HybridLimiter
) -> None:
    check = LimitCheck(Policy("hiccup", Rate(10**6, 3600.0), Algorithm.GCRA), "ip:1")
    assert (await hybrid.adecide((check,))).backend == "redis"  # connected, script loaded
    before = _failures()
    os.kill(server.pid, signal.SIGSTOP)
    try:
        decisions = await asyncio.gather(*(hybrid.adecide((check,)) for _ in range(20)))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    # Every stalled call was answered locally, within the budget's reach ...
    assert {d.backend for d in decisions} == {"local"}
    assert all(d.allowed for d in decisions)
    # ... but twenty calls that saw one stall are one failure, not a trip.
    assert not hybrid.fallback_active
    assert hybrid.health()["consecutive_failures"] == 1
    assert (await hybrid.adecide((check,))).backend == "redis"
    await hybrid.aclose()
    # Each of them is still counted as a failed call.
    assert _failures() - before == 20


async def test_a_redis_that_stays_stalled_still_trips_after_three_budgets(
    server: RedisServer, hybrid: HybridLimiter
) -> None:
    check = LimitCheck(Policy("stalled", Rate(10**6, 3600.0), Algorithm.GCRA), "ip:1")
    assert (await hybrid.adecide((check,))).backend == "redis"
    os.kill(server.pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            await asyncio.gather(*(hybrid.adecide((check,)) for _ in range(5)))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert hybrid.fallback_active
    await hybrid.aclose()


async def test_a_rule_redis_found_exhausted_stays_exhausted_when_redis_stalls(
    server: RedisServer, hybrid: HybridLimiter
) -> None:
    check = LimitCheck(Policy("spent", Rate(3, 3600.0), Algorithm.TOKEN_BUCKET), "ip:9")
    answers = [await hybrid.adecide((check,)) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[-1].backend == "redis"
    os.kill(server.pid, signal.SIGSTOP)
    try:
        late = await hybrid.adecide((check,))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    # Decided locally (Redis did not answer), but not admitted on a fresh
    # local share: Redis said the rule has nothing left for this client.
    assert late.backend == "local"
    assert not late.allowed
    assert late.retry_after > 60
    # Another client of the same rule is not held back by it.
    other = LimitCheck(check.policy, "ip:10")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        fresh = await hybrid.adecide((other,))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert fresh.backend == "local" and fresh.allowed
    await hybrid.aclose()


def test_the_sync_path_also_keeps_an_exhausted_rule_exhausted(
    server: RedisServer, hybrid: HybridLimiter
) -> None:
    check = LimitCheck(Policy("spent-sync", Rate(2, 3600.0), Algorithm.GCRA), "ip:9")
    assert [hybrid.decide((check,)).allowed for _ in range(3)] == [True, True, False]
    os.kill(server.pid, signal.SIGSTOP)
    try:
        late = hybrid.decide((check,))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert late.backend == "local" and not late.allowed
