"""A Redis Cluster that is down when the limiter is built (a fleet starting during an
outage): building never touches the network, decisions are local, never an exception,
and they move to Redis once the cluster is up.

Real redis-server processes, started by the test after the limiter is built.
"""

from __future__ import annotations

from typing import Any

import pytest

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisCluster
from tests.utils.waiting import wait_for

pytestmark = [pytest.mark.redis]

CHECK = (LimitCheck(Policy("outage", Rate(10**6, 3600.0), Algorithm.GCRA), "ip:10.9.8.7"),)


def test_a_cluster_down_at_start_is_decided_locally_then_on_redis_once_up() -> None:
    cluster = RedisCluster()  # its ports are chosen, nothing listens on them yet
    # Built the way the runtime builds it on a worker's first request.
    limiter = build_hybrid_limiter(
        {"URL": cluster.url, "CLUSTER": True},
        fallback_latency=0.5,
        fallback={"INSTANCES": 4},
        local=LocalLimiter(),
    )
    try:
        assert {limiter.decide(CHECK).backend for _ in range(5)} == {"local"}
        assert limiter.health()["share"] == 0.25
        cluster.start()
        wait_for(lambda: limiter.decide(CHECK).backend == "redis", 20, "back on Redis")
    finally:
        limiter.close()
        cluster.stop()


async def test_a_cluster_down_at_start_never_raises_on_the_async_path() -> None:
    cluster = RedisCluster()
    limiter = build_hybrid_limiter(
        {"URL": cluster.url, "CLUSTER": True}, fallback_latency=0.05, local=LocalLimiter()
    )
    try:
        decisions = [await limiter.adecide(CHECK) for _ in range(5)]
        assert {d.backend for d in decisions} == {"local"}
    finally:
        await limiter.aclose()


def test_requests_during_a_cluster_outage_at_start_get_answers_not_500(client: Any) -> None:
    from django.test import override_settings

    cluster = RedisCluster()  # never started
    resilience = {
        "BACKEND": "redis",
        "REDIS": {"URL": cluster.url, "CLUSTER": True},
        "FALLBACK": {"INSTANCES": 2},
        "LIMITS": [{"name": "cold", "path": "/sync-ip/", "rate": "4/m", "key": "ip"}],
    }
    with override_settings(RESILIENCE=resilience, ROOT_URLCONF="tests.limiting.urls"):
        codes = [client.get("/sync-ip/").status_code for _ in range(4)]
    # Local limits at this worker's share (the view's own @limit, 2/m, is a half: 1).
    assert codes == [200, 429, 429, 429]
