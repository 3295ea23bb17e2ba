"""Connection settings that come from elsewhere than ``REDIS``'s own keys: a django-redis
cache's ``OPTIONS["SENTINEL_KWARGS"]``, and timeouts in the URL's query string, which may
tighten the latency budget but never loosen it (docs/redis.md#timeouts-and-cold-start).

Real processes: a redis-server behind a proxy that delays its replies, and a
``redis-server --sentinel`` with its own password.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from resilience_django.conf import parse_redis
from resilience_django.limiting.decision import LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import make_sync_client, parse_redis_settings
from resilience_django.units import Rate
from tests.limiting.test_sentinel_options import SERVICE, Sentinel
from tests.utils.redis_server import redis_server
from tests.utils.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


def _check(name: str) -> tuple[LimitCheck, ...]:
    return (LimitCheck(Policy(name, Rate(1000, 60.0)), uuid.uuid4().hex),)


@pytest.fixture(scope="module")
def guarded() -> Iterator[Sentinel]:
    s = Sentinel("requirepass sentinel-secret").start()
    yield s
    s.stop()


def test_a_django_redis_caches_sentinel_kwargs_reach_the_sentinels(guarded: Sentinel) -> None:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "limits": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{SERVICE}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": [guarded.address],
                # As django-redis's docs give it; its timeouts are left to the limiter.
                "SENTINEL_KWARGS": {"password": "sentinel-secret", "socket_timeout": 5},
            },
        },
    }
    with override_settings(CACHES=caches):
        settings = parse_redis({"CACHE": "limits"}, budget=0.5)
    assert settings.sentinel_kwargs == (("password", "sentinel-secret"),)
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    try:  # without the sentinels' password, asking them for the primary fails
        assert limiter.decide(_check("cache-sentinel")).backend == "redis"
    finally:
        limiter.close()


def test_a_socket_timeout_in_the_url_does_not_loosen_the_latency_budget() -> None:
    with redis_server() as server, TcpProxy(server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=5&socket_connect_timeout=5"
        settings = parse_redis({"URL": url}, budget=0.05)
        assert (settings.socket_timeout, settings.connect_timeout) == (0.05, 1.0)
        limiter = RedisLimiter(settings=settings)
        try:
            assert limiter.decide(_check("url-timeout")).allowed  # connected, script loaded
            proxy.latency = 1.0  # far past the budget, well within the URL's 5 s
            with pytest.raises(redis.exceptions.TimeoutError):
                limiter.decide(_check("url-timeout"))
        finally:
            limiter.close()


def test_a_tighter_socket_timeout_in_the_url_tightens_the_budget() -> None:
    settings = parse_redis_settings(
        {"URL": "redis://127.0.0.1:1/0?socket_timeout=0.02"}, budget=0.05
    )
    assert settings.socket_timeout == 0.02


@pytest.mark.parametrize("sentinels", [(), (("127.0.0.1", 1),)])
def test_the_clients_get_the_budget_not_the_urls_timeouts(sentinels: tuple[object, ...]) -> None:
    url = "redis://mymaster/0?socket_timeout=5&socket_connect_timeout=5&client_name=orders"
    settings = parse_redis_settings({"URL": url, "SENTINELS": sentinels}, budget=0.05)
    client = make_sync_client(settings)  # connects at first use only
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.05
    assert kwargs["client_name"] == "orders"  # the URL's other options still reach it
    client.close()
