"""A ``unix:///path`` URL (docs/settings.md#url) reaches Redis over its socket, with or without
query options the limiter drops (the URL rebuilt without them must stay a unix:// URL).

A real redis-server listening on a unix socket of its own.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_django.limiting.decision import LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import make_sync_client_from_url, parse_redis_settings
from resilience_django.units import Rate
from tests.utils.redis_server import redis_server

pytestmark = pytest.mark.redis

QUERIES = ["", "?db=0", "?socket_timeout=5&health_check_interval=1&max_connections=2"]


@pytest.fixture(scope="module")
def socket_path() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="rd-unix-")  # short: a socket path is at most ~100 bytes
    path = str(Path(folder) / "redis.sock")
    try:
        with redis_server(("--unixsocket", path, "--unixsocketperm", "700")):
            yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check() -> tuple[LimitCheck, ...]:
    return (LimitCheck(Policy("unix-url", Rate(1000, 60.0)), uuid.uuid4().hex),)


@pytest.mark.parametrize("query", QUERIES)
def test_the_limiter_decides_over_a_unix_socket(socket_path: str, query: str) -> None:
    url = f"unix://{socket_path}{query}"
    limiter = RedisLimiter(settings=parse_redis_settings({"URL": url}, budget=0.5))
    try:
        assert limiter.decide(_check()).backend == "redis"
        pool = limiter.client.connection_pool  # type: ignore[union-attr]
        assert pool.connection_kwargs["path"] == socket_path
    finally:
        limiter.close()


@pytest.mark.parametrize("query", QUERIES)
async def test_the_async_limiter_decides_over_a_unix_socket(socket_path: str, query: str) -> None:
    url = f"unix://{socket_path}{query}"
    limiter = RedisLimiter(settings=parse_redis_settings({"URL": url}, budget=0.5))
    try:
        assert (await limiter.adecide(_check())).backend == "redis"
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("query", QUERIES)
def test_the_fleet_client_reaches_a_unix_socket(socket_path: str, query: str) -> None:
    client = make_sync_client_from_url(f"unix://{socket_path}{query}", timeout=1.0)
    try:
        assert client.ping()
    finally:
        client.close()
