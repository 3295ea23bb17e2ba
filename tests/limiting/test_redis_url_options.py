"""Query options of a Redis URL that the limiter sets itself: health checks, retries and the
pool size are its own whatever the URL says, and the fleet store's client from a URL keeps
its own timeout like the limiter (the URL may only tighten it).  docs/settings.md#url.

Real redis-servers, one behind a proxy that delays its replies.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from resilience_django.limiting.decision import LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import (
    make_async_client,
    make_sync_client,
    make_sync_client_from_url,
    parse_redis_settings,
)
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.tcp_proxy import TcpProxy
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.redis

LEFTOVERS = "health_check_interval=1&retry_on_timeout=true&retry_on_error=TimeoutError"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def _check() -> tuple[LimitCheck, ...]:
    return (LimitCheck(Policy("url-options", Rate(1000, 60.0)), uuid.uuid4().hex),)


def _limiter(url: str) -> RedisLimiter:
    return RedisLimiter(settings=parse_redis_settings({"URL": url}, budget=0.5))


def _pings(admin: redis.Redis) -> int:
    return int(admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))


def test_a_health_check_interval_in_the_url_adds_no_ping_to_a_decision(
    server: RedisServer,
) -> None:
    limiter = _limiter(f"{server.url}?health_check_interval=1")
    admin = redis.Redis(port=server.port)
    try:
        assert limiter.decide(_check()).backend == "redis"  # connected, script loaded
        pool = limiter.client.connection_pool
        idle = pool._available_connections[0]  # type: ignore[union-attr]
        # Idle past its health-check time: redis-py would PING before the next command.
        wait_for(lambda: time.monotonic() > idle.next_health_check, 10, "an idle connection")
        before = _pings(admin)
        assert limiter.decide(_check()).backend == "redis"
        assert _pings(admin) == before  # one round trip, the decision's own
    finally:
        limiter.close()
        admin.close()


def test_a_max_connections_in_the_url_does_not_shrink_the_limiters_pool(
    server: RedisServer,
) -> None:
    limiter = _limiter(f"{server.url}?max_connections=1")
    try:
        pool = limiter.client.connection_pool
        busy = pool.get_connection()  # another thread's decision holds one connection
        try:  # a pool of 1 would fail this one: "Too many connections", a fallback
            assert limiter.decide(_check()).backend == "redis"
        finally:
            pool.release(busy)
    finally:
        limiter.close()


def test_a_retry_in_the_url_does_not_break_the_client(server: RedisServer) -> None:
    # redis-py passes an unknown option on as a string: `retry="3"` failed every call.
    limiter = _limiter(f"{server.url}?retry=3&{LEFTOVERS}")
    try:
        assert limiter.decide(_check()).backend == "redis"
    finally:
        limiter.close()


@pytest.mark.parametrize("sentinels", [(), (("127.0.0.1", 1),)])
async def test_the_clients_keep_their_own_health_checks_retries_and_pool_size(
    sentinels: tuple[object, ...],
) -> None:
    url = f"redis://mymaster/0?max_connections=3&{LEFTOVERS}&client_name=orders"
    settings = parse_redis_settings({"URL": url, "SENTINELS": sentinels}, budget=0.05)
    sync, aio = make_sync_client(settings), make_async_client(settings)  # connect at first use
    try:
        for pool in (sync.connection_pool, aio.connection_pool):
            kwargs = pool.connection_kwargs  # type: ignore[union-attr]
            assert kwargs["health_check_interval"] == 0
            assert kwargs["retry"].get_retries() == 0
            assert "retry_on_timeout" not in kwargs and "retry_on_error" not in kwargs
            assert pool.max_connections == settings.max_connections == 64  # type: ignore[union-attr]
            assert kwargs["client_name"] == "orders"  # the URL's other options still reach it
    finally:
        sync.close()
        await aio.aclose()


def test_the_fleet_clients_url_timeouts_do_not_loosen_its_own() -> None:
    with redis_server() as server, TcpProxy(server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=30&socket_connect_timeout=30"
        client = make_sync_client_from_url(url, timeout=0.5)
        try:
            kwargs = client.connection_pool.connection_kwargs
            assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
            assert client.ping()
            proxy.latency = 5.0  # far past its 0.5 s, well within the URL's 30 s
            with pytest.raises(redis.exceptions.TimeoutError):
                client.ping()
        finally:
            client.close()


def test_the_fleet_clients_url_may_tighten_its_timeouts_and_size_its_pool() -> None:
    url = "redis://127.0.0.1:1/0?socket_timeout=0.2&max_connections=4&health_check_interval=5"
    client = make_sync_client_from_url(url, timeout=1.0)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.2, 0.2)
    assert client.connection_pool.max_connections == 4
    assert kwargs["health_check_interval"] == 0
    client.close()
