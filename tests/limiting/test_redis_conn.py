"""Building the limiter's Redis clients from settings: cache alias, URL, timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from resilience_django.conf import parse_redis
from resilience_django.exceptions import ConfigError
from resilience_django.limiting.decision import LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import (
    make_async_client,
    make_sync_client,
    make_sync_client_from_url,
    parse_redis_settings,
)
from resilience_django.units import Rate
from tests.utils.redis_server import RedisSentinel, RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def test_sync_timeouts_are_the_latency_budget_and_connect_has_its_own_budget() -> None:
    settings = parse_redis_settings({"URL": "redis://127.0.0.1:1/0"}, budget=0.05)
    assert settings.socket_timeout == 0.05 and settings.connect_timeout == 1.0
    client = make_sync_client(settings)
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    # A sync decision may have to connect: it does so within the budget too.
    assert kwargs["socket_timeout"] == 0.05 and kwargs["socket_connect_timeout"] == 0.05
    # No hidden retries: the fallback is the retry.
    assert kwargs["retry"].get_retries() == 0
    client.close()


async def test_async_clients_connect_within_the_connect_budget() -> None:
    settings = parse_redis_settings({"URL": "redis://127.0.0.1:1/0"}, budget=0.05)
    client = make_async_client(settings)
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    # The per-decision bound is the limiter's settling alarm; this is a backstop.
    assert kwargs["socket_connect_timeout"] == 1.0 and kwargs["socket_timeout"] == 1.0
    assert kwargs["retry"].get_retries() == 0
    await client.aclose()


def test_background_client_from_a_url_has_the_given_timeouts_and_no_retries(
    server: RedisServer,
) -> None:
    client = make_sync_client_from_url(server.url, timeout=0.5)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0
    assert client.ping()
    client.close()


def test_pool_size_and_timeouts_are_configurable() -> None:
    settings = parse_redis_settings(
        {"URL": "redis://127.0.0.1:1/0", "MAX_CONNECTIONS": 8, "SOCKET_TIMEOUT": "20ms"},
        budget=0.05,
    )
    assert settings.max_connections == 8 and settings.socket_timeout == 0.02
    assert settings.connect_timeout == 1.0


def test_cache_alias_reuses_the_django_redis_location_and_password(server: RedisServer) -> None:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "limits": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"PASSWORD": None},
        },
    }
    with override_settings(CACHES=caches):
        settings = parse_redis({"CACHE": "limits"}, budget=0.5)
    assert settings.url == server.url
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    assert limiter.decide((LimitCheck(Policy("c", Rate(1, 60.0)), "k"),)).backend == "redis"
    limiter.close()


async def test_async_client_talks_to_the_same_server(server: RedisServer) -> None:
    settings = parse_redis_settings({"URL": server.url}, budget=0.5)
    client = make_async_client(settings)
    assert await client.ping()
    await client.aclose()


@pytest.mark.parametrize(
    "value",
    [
        {"CACHE": "missing"},
        {"CACHE": "default"},  # a LocMemCache: no Redis URL
        {"URL": "http://example.invalid"},
        {"URL": "redis://127.0.0.1/0", "MAX_CONNECTIONS": 0},
        {"URL": "redis://127.0.0.1/0", "SOCKET_TIMEOUT": "soon"},
        {"URL": "redis://127.0.0.1/0", "SENTINEL": True},
        # redis-py's RedisCluster refuses these when built, which is at first use.
        {"URL": "redis://127.0.0.1:7000/1", "CLUSTER": True},
        {"URL": "unix:///tmp/redis.sock", "CLUSTER": True},
        {"URL": "redis://127.0.0.1:7000/0", "CLUSTER": True, "SENTINELS": [("127.0.0.1", 26379)]},
    ],
)
def test_unusable_settings_raise_config_error_e040(value: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_redis(value, budget=0.05)
    assert info.value.check_id == "resilience.E040"
    assert info.value.hint or "MAX_CONNECTIONS" in str(info.value)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RedisSentinel]:
    s = RedisSentinel().start()
    yield s
    s.stop()


def sentinel_caches(s: RedisSentinel) -> dict[str, object]:
    # django-redis's Sentinel setup, as its docs give it.
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "limits": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{s.service}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": [("127.0.0.1", s.sentinel.port)],
            },
        },
    }


def test_sentinel_cache_alias_finds_the_primary_through_the_sentinels(
    sentinel: RedisSentinel,
) -> None:
    with override_settings(CACHES=sentinel_caches(sentinel)):
        settings = parse_redis({"CACHE": "limits"}, budget=0.5)
    assert settings.sentinels == (("127.0.0.1", sentinel.sentinel.port),)
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    check = LimitCheck(Policy("s", Rate(2, 60.0)), "k")
    assert [limiter.decide((check,)).allowed for _ in range(3)] == [True, True, False]
    primary = redis.Redis(port=sentinel.primary.port)
    assert primary.keys("rl:*") == [b"rl:{k}:s:sw60000"]
    primary.close()
    limiter.close()


async def test_sentinel_async_client_decides_on_the_primary(sentinel: RedisSentinel) -> None:
    settings = parse_redis_settings(
        {"URL": "redis://mymaster/0", "SENTINELS": [("127.0.0.1", sentinel.sentinel.port)]},
        budget=0.5,
    )
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    check = LimitCheck(Policy("sa", Rate(1, 60.0)), "k")
    assert (await limiter.adecide((check,))).allowed
    assert not (await limiter.adecide((check,))).allowed
    await limiter.aclose()
    limiter.close()


def test_sentinel_primary_keeps_the_urls_acl_user_and_password(sentinel: RedisSentinel) -> None:
    admin = redis.Redis(port=sentinel.primary.port)
    admin.acl_setuser(
        "limiter", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    settings = parse_redis_settings(
        {
            "URL": "redis://limiter:s3cret@mymaster/0",
            "SENTINELS": [("127.0.0.1", sentinel.sentinel.port)],
        },
        budget=0.5,
    )
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    try:
        assert limiter.decide((LimitCheck(Policy("acl", Rate(2, 60.0)), "k"),)).allowed
        users = {c["user"] for c in admin.client_list() if c["id"] != str(admin.client_id())}
        assert "limiter" in users
    finally:
        limiter.close()
        admin.acl_deluser("limiter")
        admin.close()


async def test_sentinel_primary_over_tls_keeps_tls() -> None:
    settings = parse_redis_settings(
        {"URL": "rediss://mymaster/0", "SENTINELS": [("127.0.0.1", 1)]}, budget=0.5
    )
    client = make_sync_client(settings)
    assert "SSL" in client.connection_pool.connection_class.__name__  # type: ignore[union-attr]
    client.close()
    aclient = make_async_client(settings)
    assert "SSL" in aclient.connection_pool.connection_class.__name__  # type: ignore[union-attr]
    await aclient.aclose()
