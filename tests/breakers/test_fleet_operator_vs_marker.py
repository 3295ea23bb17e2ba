"""An operator's reset or force-close of a shared breaker sticks in every process: the open-until
marker written before it (by the process that tripped) does not open the breaker again, while a
trip after it is shared as usual.  Against a real Redis store and the database store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from resilience_django import fleet
from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.database import DatabaseStore
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url

pytestmark = pytest.mark.usefixtures("no_fleet")
POLICY = BreakerPolicy(failure_threshold=1, open_for=30, shared=True, shared_poll=0.01)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("database", marks=pytest.mark.django_db),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "database":
        yield DatabaseStore()
        return
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    yield store
    keys = list(client.scan_iter(match=store.p + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _process(store: Any) -> tuple[Breaker, FleetPublisher, ManualClock]:
    clock = ManualClock(0)
    b = Breaker("pricing", POLICY, clock=clock)
    pub = FleetPublisher(store, lambda: [b], clock=clock, command_poll=0)
    pub.attach(b)
    return b, pub, clock


def _rounds(*procs: tuple[Breaker, FleetPublisher, ManualClock], n: int = 3) -> None:
    for _ in range(n):
        for _b, pub, clock in procs:
            clock.advance(1)
            pub.tick()


def _trip(b: Breaker) -> None:
    b.record_failure(b.acquire())
    assert events.flush(30)  # the fleet thread hears of the trip through its listener


@pytest.mark.parametrize("action", ["force_close", "reset"])
def test_a_force_close_sent_from_elsewhere_is_not_undone_by_the_shared_marker(
    store: Any, action: str
) -> None:
    a, b = _process(store), _process(store)
    _trip(a[0])
    _rounds(a, b)
    assert a[0].state == b[0].state == "open"
    store.send_command("pricing", action)  # the admin of a third process
    _rounds(a, b)
    assert a[0].state == b[0].state == "closed"
    # A trip after the operator's close is shared again.
    _trip(b[0])
    _rounds(a, b)
    assert a[0].state == b[0].state == "open"
    assert a[0].last_transition is not None
    assert a[0].last_transition.reason == fleet.SHARED_REASON


def test_a_force_close_sent_from_this_process_sticks_here_and_elsewhere(store: Any) -> None:
    a, b = _process(store), _process(store)
    _trip(a[0])
    _rounds(a, b)
    assert b[0].state == "open"
    # What fleet.send_command does in process b: apply here, then number it in the store.
    epoch = b[1].applying_here("pricing", "force_close")
    b[0].force_close()
    b[1].sent_here("pricing", store.send_command("pricing", "force_close"), epoch)
    _rounds(b, a)
    assert a[0].state == b[0].state == "closed"
