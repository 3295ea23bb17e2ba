"""The fallback share when the fleet's count changes under a running process: heartbeats lost
while Redis stays up (FLUSHALL, a failover to an empty replica), and a share that changes in
the middle of a rule's window (docs/fallback.md).

Real throwaway redis-servers; the probes are called directly, not from their thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.fallback import UNKNOWN_INSTANCES
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.services import free_port
from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def fleet(url: str, size: int) -> list[HybridLimiter]:
    """``size`` processes heartbeating into one set, each count trusted after 300 ms."""
    key = f"rl:share-{uuid.uuid4().hex}"
    fallback = {"HEARTBEAT_TTL": "300ms"}
    limiters = [
        build_hybrid_limiter(
            {"URL": url}, fallback_latency=0.5, fallback=fallback, local=LocalLimiter()
        )
        for _ in range(size)
    ]
    for limiter in limiters:
        limiter.heartbeat_key = key
    return limiters


def counted(limiters: list[HybridLimiter], share: float) -> None:
    def probed() -> bool:
        probes = [each.probe() for each in limiters]  # every one, even after a failure
        return all(probes) and limiters[0].health()["share"] == share

    wait_for(probed, 10, f"a share of {share}")


def test_heartbeats_lost_while_redis_stays_up_make_the_count_young_again(
    server: RedisServer,
) -> None:
    first, _ = limiters = fleet(server.url, 2)
    admin = redis.Redis(port=server.port)
    try:
        counted(limiters, 0.5)
        admin.flushall()  # or a failover to an empty replica: every heartbeat is gone
        assert first.probe()  # succeeds, and counts only itself
        assert first.health()["live_instances"] == 1
        # Not "alone": until a count is one HEARTBEAT_TTL old, at most a tenth.
        assert first.health()["share"] == 1 / UNKNOWN_INSTANCES
        counted(limiters, 0.5)  # once both have heartbeated for a TTL, a half each again
    finally:
        admin.close()
        for limiter in limiters:
            limiter.close()


@pytest.mark.parametrize(
    ("algorithm", "fresh"),
    # A sliding window counts units: the larger limit has room for what the smaller one did
    # not record.  A bucket and GCRA hold what is left, which a larger share does not refill.
    [(Algorithm.SLIDING_WINDOW, 4), (Algorithm.TOKEN_BUCKET, 0), (Algorithm.GCRA, 0)],
)
def test_a_share_that_grows_mid_window_can_spend_again_what_redis_admitted(
    server: RedisServer, algorithm: Algorithm, fresh: int
) -> None:
    first, second = limiters = fleet(server.url, 2)
    check = LimitCheck(Policy(f"mid-{algorithm}", Rate(8, 3600.0), algorithm), "ip:1")
    try:
        counted(limiters, 0.5)
        # Redis admits the whole limit to this process; its share records 0.5 x 8 = 4 of it.
        assert all(first.decide((check,)).backend == "redis" for _ in range(8))
        second.close()  # its heartbeat expires: the first is alone, its share grows
        counted([first], 1.0)
        first._redis = build_hybrid_limiter({"URL": f"redis://127.0.0.1:{free_port()}/0"})._redis
        allowed = sum(first.decide((check,)).allowed for _ in range(20))
        assert first.fallback_active
        # "share x limit - admitted" would be 0; the bound is s x limit - min(r, s' x limit),
        # s and s' the largest and smallest share in the window: 8 - min(8, 4) = 4.
        assert allowed == fresh <= 1.0 * 8 - min(8, 0.5 * 8)
    finally:
        for limiter in limiters:
            limiter.close()
