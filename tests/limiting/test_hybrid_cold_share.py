"""A cold fleet's share: a heartbeat count younger than one HEARTBEAT_TTL is a lower bound
(the others may not have heartbeated yet), so it never makes a process "alone" by accident.

Real throwaway redis-servers; docs/fallback.md#a-fleet-that-starts-during-an-outage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.fallback import UNKNOWN_INSTANCES
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.services import free_port
from tests.utils.redis_server import RedisServer
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.redis

COLD = 1 / UNKNOWN_INSTANCES


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def make(url: str, key: str, **fallback: object) -> HybridLimiter:
    limiter = build_hybrid_limiter(
        {"URL": url}, fallback_latency=0.5, fallback=fallback, local=LocalLimiter()
    )
    limiter.heartbeat_key = key
    return limiter


def test_the_first_worker_of_a_cold_fleet_is_not_alone_by_accident(server: RedisServer) -> None:
    key = f"rl:cold-{uuid.uuid4().hex}"
    limiter = make(server.url, key, HEARTBEAT_TTL="60s")
    try:
        # The first heartbeat of a fleet starting together: the others have not
        # heartbeated yet, so the count is 1.
        assert limiter.probe(judge=False)
        assert limiter.health()["live_instances"] == 1
        assert limiter.health()["share"] == COLD
        # Redis goes away before the next heartbeat: local limits at a tenth, not all.
        limiter._redis = make(f"redis://127.0.0.1:{free_port()}/0", key)._redis
        check = LimitCheck(Policy("cold", Rate(40, 3600.0), Algorithm.TOKEN_BUCKET), "ip:1")
        allowed = [limiter.decide((check,)).allowed for _ in range(50)]
        assert limiter.fallback_active
        assert sum(allowed) == 40 * COLD
    finally:
        limiter.close()


def test_a_count_is_trusted_once_it_is_one_heartbeat_ttl_old(server: RedisServer) -> None:
    key = f"rl:cold-{uuid.uuid4().hex}"
    ttl = 0.3
    first, second = (make(server.url, key, HEARTBEAT_TTL=f"{ttl}s") for _ in range(2))
    try:
        started = time.monotonic()
        assert first.probe(judge=False) and second.probe(judge=False)
        assert second.health()["live_instances"] == 2
        assert first.health()["share"] == second.health()["share"] == COLD

        def both_counted() -> bool:
            assert first.probe() and second.probe()
            return first.health()["share"] == second.health()["share"] == 0.5

        wait_for(both_counted, 10, "two instances share the limit")
        assert time.monotonic() - started >= ttl
        assert first.health()["live_instances"] == 2
    finally:
        first.close()
        second.close()


def test_a_redis_restart_starts_the_count_over(server: RedisServer) -> None:
    key = f"rl:cold-{uuid.uuid4().hex}"
    limiter = make(server.url, key, HEARTBEAT_TTL="300ms")
    try:
        assert limiter.probe(judge=False)
        wait_for(lambda: limiter.probe() and limiter.health()["share"] == 1.0, 10, "alone, counted")
        # A restarted Redis has lost the heartbeats: the next count is young again.
        server.kill()
        assert not limiter.probe()
        server.start()
        wait_for(lambda: limiter.probe(), 10, "the probe reaches Redis again")
        assert limiter.health()["live_instances"] == 1
        assert limiter.health()["share"] == COLD
    finally:
        limiter.close()
