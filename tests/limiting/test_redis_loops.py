"""An event loop per call (asgiref's ``async_to_sync`` runs each call in ``asyncio.run``,
as an async view under WSGI does): each loop's async client is closed with its loop, so
neither loops, clients nor Redis connections pile up.  A real redis-server."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.redis

CHECK = (LimitCheck(Policy("loops", Rate(10**9, 3600.0), Algorithm.GCRA), "ip:1"),)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def hybrid(server: RedisServer) -> Iterator[HybridLimiter]:
    limiter = build_hybrid_limiter({"URL": server.url}, local=LocalLimiter())
    yield limiter
    limiter.close()


def test_a_loop_per_call_leaves_no_client_or_connection_behind(
    server: RedisServer, hybrid: HybridLimiter
) -> None:
    admin = redis.Redis(port=server.port)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            for _ in range(20):
                assert async_to_sync(hybrid.adecide)(CHECK).backend == "redis"
            gc.collect()
        # Measured before: 20 loops kept with their clients, 22 connections open.
        assert len(hybrid._redis._aclients) == 0
        # This client, and the sync client of the probe thread, at most.
        wait_for(lambda: len(admin.client_list()) <= 3, 10, "connections closed")
    finally:
        admin.close()
