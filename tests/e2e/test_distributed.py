"""Distributed limits over real HTTP: two uvicorn servers share one real Redis, which we kill."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server, uvicorn_server
from tests.utils.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def _config(redis_url: str) -> dict[str, object]:
    return {
        "BACKEND": "redis",
        "REDIS": {"URL": redis_url},
        "FALLBACK_LATENCY": "50ms",
        "FALLBACK": {"PROBE_INTERVAL": "200ms", "RECOVERY_PROBES": 2, "INSTANCES": 2},
        "LIMITS": [
            {"name": "shared-10m", "path": "/hello/", "key": "ip", "rate": "10/m",
             "scope": "distributed"},
            {"name": "wide", "path": "/async-hello/", "key": "ip", "rate": "100000/m",
             "scope": "distributed", "algorithm": "gcra"},
        ],
        "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
    }  # fmt: skip


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def servers(redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    with uvicorn_server(_config(redis.url)) as a, uvicorn_server(_config(redis.url)) as b:
        yield a, b


def _gauge(server: Server, name: str) -> float | None:
    text = httpx.get(server.url + "/resilience/metrics/", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_two_servers_share_one_limit_through_redis(servers: tuple[Server, Server]) -> None:
    a, b = servers
    codes = []
    with httpx.Client(timeout=5) as client:
        for i in range(30):
            codes.append(client.get((a if i % 2 else b).url + "/hello/").status_code)
    assert codes.count(200) == 10
    assert codes.count(429) == 20


def test_killed_redis_never_becomes_a_5xx_and_decisions_come_back_after_restart(
    servers: tuple[Server, Server], redis: RedisServer
) -> None:
    a, _ = servers
    with httpx.Client(timeout=5) as client:
        assert client.get(a.url + "/async-hello/").status_code == 200
        assert _gauge(a, "resilience_limiter_fallback_active") == 0
        redis.kill()
        statuses: list[int] = []
        slowest = 0.0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            start = time.monotonic()
            statuses.append(client.get(a.url + "/async-hello/").status_code)
            slowest = max(slowest, time.monotonic() - start)
        assert statuses and set(statuses) == {200}
        # No request waits much longer than the 50 ms latency budget for a dead Redis.
        assert slowest < 0.4  # not the seconds of a socket timeout
        assert _gauge(a, "resilience_limiter_fallback_active") == 1

        restarted = RedisServer(port=redis.port).start()
        try:
            back = None
            start = time.monotonic()
            while time.monotonic() - start < 5:
                assert client.get(a.url + "/async-hello/").status_code == 200
                if _gauge(a, "resilience_limiter_fallback_active") == 0:
                    back = time.monotonic() - start
                    break
                time.sleep(0.05)
            assert back is not None and back < 2.0
        finally:
            restarted.stop()
