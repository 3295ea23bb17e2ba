"""The demo with ``REDIS_URL`` set: limits, knobs and the breaker fleet go through Redis."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis

from tests.demo.server import demo_server
from tests.demo.staff import breaker_state, eventually, login, order, set_knobs
from tests.services import free_port, require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server of our own (the shared one keeps other people's keys)."""
    binary = require_binary("redis-server")
    port = free_port()
    directory = str(tmp_path)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_with_redis_url_limits_knobs_and_breakers_live_in_redis(
    prepared: tuple[Path, str], redis_url: str
) -> None:
    with (
        demo_server(*prepared, workers=2, extra_env={"REDIS_URL": redis_url}) as demo,
        closing(login(demo)) as staff,
    ):
        statuses = [order(demo, "10.20.0.1").status_code for _ in range(24)]
        assert statuses.count(201) >= 20 and 429 in statuses, statuses
        set_knobs(staff, pricing={"outage": True})
        with closing(redis.Redis.from_url(redis_url)) as store:
            keys = [k.decode() for k in store.scan_iter(count=1000)]
        # The per-client limit is counted in Redis (shared by both workers), and
        # the chaos knobs live there too.
        assert any("orders-per-client" in k for k in keys), keys
        assert any("demo-chaos:pricing" in k for k in keys), keys
        for i in range(12):
            answer = order(demo, f"10.21.0.{i}")
            assert answer.status_code == 201, answer.text
            assert answer.json()["price"]["source"] == "fallback"
        eventually(lambda: breaker_state(staff, "pricing") == "open", timeout=5)
