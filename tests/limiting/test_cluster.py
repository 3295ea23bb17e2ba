"""RedisLimiter on a real three-node Redis Cluster the test starts itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import RedisSettings, make_sync_client
from resilience_django.units import Rate
from tests.utils.redis_server import RedisCluster

pytestmark = [pytest.mark.redis]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    c = RedisCluster()  # skips (or fails under RESILIENCE_REQUIRE_SERVICES=1) without binaries
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def limiter(cluster: RedisCluster) -> Iterator[RedisLimiter]:
    settings = RedisSettings(url=cluster.url, cluster=True, socket_timeout=2, connect_timeout=2)
    client = make_sync_client(settings)
    assert isinstance(client, redis.RedisCluster)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    yield RedisLimiter(client, settings=settings)
    client.close()


def p(name: str, limit: int, algorithm: Algorithm = Algorithm.SLIDING_WINDOW) -> Policy:
    return Policy(name, Rate(limit, 3600.0), algorithm)


def test_one_clients_rules_share_a_slot_and_decide_in_one_call(limiter: RedisLimiter) -> None:
    wide = LimitCheck(p("wide", 10, Algorithm.TOKEN_BUCKET), "ip:10.1.2.3")
    narrow = LimitCheck(p("narrow", 2, Algorithm.GCRA), "ip:10.1.2.3")
    results = [limiter.decide((wide, narrow)).allowed for _ in range(4)]
    assert results == [True, True, False, False]
    assert limiter.decide((wide,)).outcomes[0].remaining == 7
    client = limiter.client
    keys = client.keys(target_nodes=client.ALL_NODES)
    slots = {client.keyslot(k) for k in keys}
    assert len(keys) == 2 and len(slots) == 1


def test_different_clients_spread_over_the_nodes(limiter: RedisLimiter) -> None:
    policy = p("spread", 5)
    for i in range(60):
        assert limiter.decide((LimitCheck(policy, f"ip:10.0.0.{i}"),)).allowed
    client = limiter.client
    nodes = {client.get_node_from_key(k).name for k in client.keys(target_nodes=client.ALL_NODES)}
    assert len(nodes) == 3


def test_rules_on_different_clients_are_split_per_slot_and_still_all_or_nothing(
    limiter: RedisLimiter,
) -> None:
    per_user = LimitCheck(p("per-user", 10), "user:alice")
    per_ip = LimitCheck(p("per-ip", 1), "ip:203.0.113.9")
    assert limiter.client.keyslot("user:alice") != limiter.client.keyslot("ip:203.0.113.9")
    first, second = limiter.decide((per_user, per_ip)), limiter.decide((per_user, per_ip))
    assert first.allowed and not second.allowed
    assert [o.check for o in second.outcomes] == [per_user, per_ip]
    # The rejected request did not consume the per-user rule.
    assert limiter.decide((per_user,)).outcomes[0].remaining == 8


def test_noscript_after_flush_on_every_node_is_survived(
    limiter: RedisLimiter, cluster: RedisCluster
) -> None:
    check = LimitCheck(p("flush", 3), "ip:1")
    assert limiter.decide((check,)).allowed
    for server in cluster.servers:
        node = redis.Redis(port=server.port)
        node.script_flush()
        node.close()
    assert limiter.decide((check,)).outcomes[0].remaining == 1


async def test_async_cluster_client_decides_and_splits(limiter: RedisLimiter) -> None:
    per_user = LimitCheck(p("a-user", 10), "user:bob")
    per_ip = LimitCheck(p("a-ip", 1), "ip:198.51.100.7")
    assert (await limiter.adecide((per_user, per_ip))).allowed
    assert not (await limiter.adecide((per_user, per_ip))).allowed
    assert (await limiter.adecide((per_user,))).outcomes[0].remaining == 8
    await limiter.aclose()


def test_hybrid_on_a_cluster_heartbeats_and_decides_on_redis(cluster: RedisCluster) -> None:
    hybrid = build_hybrid_limiter(
        {"URL": cluster.url, "CLUSTER": True}, fallback_latency=0.5, local=LocalLimiter()
    )
    try:
        assert hybrid.probe()
        assert hybrid.decide((LimitCheck(p("h", 3), "ip:1"),)).backend == "redis"
        assert hybrid.health()["live_instances"] >= 1
    finally:
        hybrid.close()
