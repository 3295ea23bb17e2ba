"""RedisLimiter on a real three-node Redis Cluster the test starts itself."""

from __future__ import annotations

import asyncio
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
    # However the rules' state is laid out in keys, it lives in one slot.
    assert keys and len(slots) == 1


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


def _migrate_slot_while(cluster: RedisCluster, client_key: str, decide_some: object) -> None:
    """Move ``client_key``'s slot to another master the way ``redis-cli --cluster reshard``
    does (IMPORTING, MIGRATING, MIGRATE of the slot's keys, SETSLOT NODE), calling
    ``decide_some()`` in each in-between state."""
    import redis.crc

    slot = redis.crc.key_slot(client_key.encode())
    masters = cluster.masters()
    source = next(
        port for port, ranges in masters.items() if any(a <= slot <= b for a, b in ranges)
    )
    target = next(port for port in masters if port != source)
    src, dst = redis.Redis(port=source), redis.Redis(port=target)
    try:
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        decide_some()  # type: ignore[operator]
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        decide_some()  # type: ignore[operator]  # keys still on the source: served there
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        assert keys
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        decide_some()  # type: ignore[operator]  # keys moved, slot not yet: ASK
        for port in masters:
            node = redis.Redis(port=port)
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            node.close()
        decide_some()  # type: ignore[operator]  # slot moved: MOVED, then the new owner
    finally:
        src.close()
        dst.close()


def _cluster_limiter(cluster: RedisCluster) -> RedisLimiter:
    # The production budget: redirections must not need retries or a longer timeout.
    settings = RedisSettings(url=cluster.url, cluster=True, socket_timeout=0.05)
    return RedisLimiter(make_sync_client(settings), settings=settings)


def test_a_slot_migrated_under_load_stays_exact_on_the_sync_path(cluster: RedisCluster) -> None:
    limiter = _cluster_limiter(cluster)
    key = "ip:192.0.2.44"
    checks = (
        LimitCheck(p("mig-tb", 40, Algorithm.TOKEN_BUCKET), key),
        LimitCheck(p("mig-gc", 60, Algorithm.GCRA), key),
    )
    admitted: list[bool] = []

    def decide_some() -> None:
        admitted.extend(limiter.decide(checks).allowed for _ in range(15))

    try:
        _migrate_slot_while(cluster, key, decide_some)
    finally:
        limiter.close()
    assert len(admitted) == 60  # and no call raised
    assert admitted.count(True) == 40


async def test_a_slot_migrated_under_load_stays_exact_on_the_async_path(
    cluster: RedisCluster,
) -> None:
    limiter = _cluster_limiter(cluster)
    key = "ip:192.0.2.45"
    checks = (
        LimitCheck(p("amig-tb", 40, Algorithm.TOKEN_BUCKET), key),
        LimitCheck(p("amig-gc", 60, Algorithm.GCRA), key),
    )
    await limiter._ready()  # the loop's cold start, outside any decision
    admitted: list[bool] = []

    async def burst() -> None:
        # 15 concurrent decisions: under load, several in flight at each step.
        answers = await asyncio.gather(*(limiter.adecide(checks) for _ in range(15)))
        admitted.extend(a.allowed for a in answers)

    def step() -> None:
        # Called from the migration's thread: the step's decisions run on this loop.
        asyncio.run_coroutine_threadsafe(burst(), loop).result(timeout=30)
        steps.append(None)

    steps: list[None] = []
    loop = asyncio.get_running_loop()
    try:
        await asyncio.to_thread(_migrate_slot_while, cluster, key, step)
    finally:
        await limiter.aclose()
        limiter.close()
    assert len(steps) == 4
    assert len(admitted) == 60  # and no call raised
    assert admitted.count(True) == 40


async def test_a_cluster_silent_at_start_is_never_initialized_inside_a_decision() -> None:
    # A port that accepts connections (the kernel's backlog) but never answers.
    import socket
    import time

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    port = hole.getsockname()[1]
    settings = RedisSettings(
        url=f"redis://127.0.0.1:{port}/0", cluster=True, socket_timeout=0.05, connect_timeout=0.3
    )
    # Only the async side is under test: the sync client is never built.
    limiter = RedisLimiter(settings=settings)
    check = LimitCheck(p("cold", 10), "ip:1")
    errors: list[str] = []
    try:
        # The first call waits for the loop's warm-up (the connect budget), which fails.
        start = time.monotonic()
        for _ in range(20):
            try:
                await limiter.adecide((check,))
            except Exception as exc:  # the test looks at which
                errors.append(type(exc).__name__)
        took = time.monotonic() - start
    finally:
        await limiter.aclose()
        hole.close()
    assert errors == ["ConnectionError"] * 20
    # One warm-up of 0.3 s, then every decision fails at once instead of
    # starting a cluster discovery of its own (a 0.3 s connect budget each:
    # 6 s for 20); the bound leaves a loaded machine room to be slow.
    assert took < 0.3 + 20 * 0.3 / 2
