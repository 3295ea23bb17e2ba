"""A fleet store that loses its data (Redis restarted without persistence, a Memcached or
Redis cache restarted, cleared or flushed) numbers commands from 1 again: a running process
must still apply the commands sent after the loss, not take them for ones it has seen."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.redis import RedisStore
from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.waiting import succeeds, wait_for

pytestmark = pytest.mark.usefixtures("no_fleet")


# Before the loss the process has seen two commands; after it, the operator sends these
# (the store numbers them from 1 again): fewer, as many, or more than the process saw.
# "fewer" passed before the fix too (the head went back below what the process saw).
AFTER_LOSS = [
    pytest.param([("b", "disable")], id="fewer"),
    pytest.param([("b", "disable"), ("a", "force_open")], id="as-many"),
    pytest.param([("b", "disable"), ("a", "force_open"), ("a", "reset")], id="more"),
]


def _scenario(
    store: Any, lose: Callable[[], None], after_loss: list[tuple[str, str]]
) -> tuple[Breaker, Breaker]:
    clock = ManualClock(0)
    a, b = Breaker("a", clock=clock), Breaker("b", clock=clock)
    pub = FleetPublisher(store, lambda: [a, b], clock=clock, command_poll=0)
    pub.attach(a)
    pub.attach(b)
    store.send_command("a", "force_open")
    store.send_command("a", "force_close")
    pub.tick()
    assert (a.state, b.state) == ("closed", "closed")
    lose()
    for name, action in after_loss:
        wait_for(lambda n=name, x=action: succeeds(lambda: store.send_command(n, x)), 10, "send")
    clock.advance(1)
    wait_for(lambda: succeeds(pub.tick), 10, "a round of the fleet thread")
    return a, b


def _expected(after_loss: list[tuple[str, str]]) -> tuple[str, str]:
    state = {"force_open": "forced_open", "reset": "closed", "disable": "disabled"}
    latest = {name: state[action] for name, action in after_loss}
    return latest.get("a", "closed"), latest.get("b", "closed")


@pytest.mark.redis
@pytest.mark.parametrize("after_loss", AFTER_LOSS)
def test_commands_sent_after_redis_lost_its_data_reach_a_running_process(
    after_loss: list[tuple[str, str]],
) -> None:
    import redis

    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        store = RedisStore(client, "t:fleet")

        def restart(server: RedisServer = server) -> None:
            server.stop()
            server.start()  # no persistence: the sequence starts again at 1

        try:
            a, b = _scenario(store, restart, after_loss)
        finally:
            client.close()
    assert (a.state, b.state) == _expected(after_loss)


@pytest.mark.parametrize("after_loss", AFTER_LOSS)
def test_commands_sent_after_the_cache_lost_its_data_reach_a_running_process(
    after_loss: list[tuple[str, str]],
) -> None:
    cache = LocMemCache(f"fleet-{uuid.uuid4().hex}", {})
    store = CacheStore(cache, "t")
    a, b = _scenario(store, cache.clear, after_loss)
    assert (a.state, b.state) == _expected(after_loss)
