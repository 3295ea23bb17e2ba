"""A master of a real 3-master Redis Cluster with replicas dies under load.

Six redis-server processes (3 masters, 3 replicas) on free ports, torn down
by PID.  Decisions run on keys of every master while one master is killed:
the healthy masters' keys stay on Redis, the dead master's keys go local and
come back after the replica takes over, with one switch each way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisCluster

pytestmark = [pytest.mark.redis]

POLICY = Policy("failover", Rate(10**6, 3600.0), Algorithm.GCRA)


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    c = RedisCluster(replicas=1, node_timeout_ms=1000, full_coverage=False)
    try:
        yield c.start()
    finally:
        c.stop()


def _one_key_per_master(cluster: RedisCluster) -> dict[int, str]:
    keys: dict[int, str] = {}
    masters = cluster.masters()
    for i in range(10_000):
        key = f"ip:10.0.{i // 250}.{i % 250}"
        slot = key_slot(key.encode())
        port = next(p for p, ranges in masters.items() if any(a <= slot <= b for a, b in ranges))
        keys.setdefault(port, key)
        if len(keys) == len(masters):
            return keys
    raise AssertionError("no key for some master")


@pytest.mark.parametrize("path", ["async", "sync"])
async def test_a_dead_master_sends_only_its_own_keys_local_and_they_come_back_once(
    cluster: RedisCluster, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    keys = _one_key_per_master(cluster)
    hybrid: HybridLimiter = build_hybrid_limiter(
        {"URL": cluster.url, "CLUSTER": True},
        # A dead master refuses at once; the healthy ones must answer within
        # the budget on a loaded machine too, or their keys would go local.
        fallback_latency=0.25,
        fallback={"PROBE_INTERVAL": "200ms", "INSTANCES": 1},
        local=LocalLimiter(),
    )
    victim = next(iter(keys))
    backends: dict[int, list[str]] = defaultdict(list)
    killed_at = back_at = None
    caplog.set_level(logging.WARNING, logger="resilience_django.limiting")
    try:
        start = time.monotonic()
        while time.monotonic() - start < 60:
            if path == "async":
                answers = await asyncio.gather(
                    *(
                        hybrid.adecide((LimitCheck(POLICY, key),))
                        for key in keys.values()
                        for _ in range(4)
                    )
                )
            else:
                answers = [
                    hybrid.decide((LimitCheck(POLICY, key),))
                    for key in keys.values()
                    for _ in range(4)
                ]
            for (port, _), answer in zip(
                [(p, k) for p, k in keys.items() for _ in range(4)], answers, strict=True
            ):
                backends[port].append(answer.backend)
            now = time.monotonic()
            if killed_at is None and now - start > 1:
                cluster.server_on(victim).kill()
                killed_at = now
            recent = backends[victim][-4:]
            if (
                killed_at
                and back_at is None
                and recent == ["redis"] * 4
                and "local" in backends[victim]
            ):
                back_at = now
            if back_at is not None and now - back_at > 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await hybrid.aclose()
    assert killed_at is not None
    assert back_at is not None, (backends[victim][-20:], hybrid.health())
    # The healthy masters' keys never left Redis.
    for port, seen in backends.items():
        if port != victim:
            assert set(seen) == {"redis"}, (port, seen.count("local"))
    # The dead master's keys went local and came back, one switch each way.
    messages = [r.getMessage() for r in caplog.records]
    down = [m for m in messages if "falling back" in m]
    up = [m for m in messages if "back on Redis" in m]
    assert len(down) == 1 and str(victim) in down[0], messages
    assert len(up) == 1, messages
    assert not hybrid.fallback_active
