"""An operator's reset or force-close of a shared breaker sticks in every process: the open-until
marker written before it (by the process that tripped) does not open the breaker again, while a
trip after it is shared as usual.  Against a real Redis store, a cache and the database store."""

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
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.database import DatabaseStore
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url

pytestmark = pytest.mark.usefixtures("no_fleet")
POLICY = BreakerPolicy(failure_threshold=1, open_for=30, shared=True, shared_poll=0.01)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cache"),
        pytest.param("database", marks=pytest.mark.django_db),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "database":
        yield DatabaseStore()
        return
    if request.param == "cache":
        from django.core.cache.backends.locmem import LocMemCache

        yield CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
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
    # Each round first at the time the last one left: a trip's marker is written at the time it
    # tripped, as in a process, whose monotonic and wall clocks move together (here only the
    # monotonic one is the test's).
    for _ in range(n):
        for _b, pub, clock in procs:
            pub.tick()
            clock.advance(1)


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


@pytest.mark.parametrize("action", ["force_close", "reset"])
def test_a_process_started_after_the_reset_is_not_opened_by_the_marker_before_it(
    store: Any, action: str
) -> None:
    a = _process(store)
    _trip(a[0])
    _rounds(a)
    store.send_command("pricing", action)
    _rounds(a)
    assert a[0].state == "closed"
    c = _process(store)  # a worker (re)started after the reset: it reads the standing commands
    _rounds(a, c)
    assert c[0].state == "closed", "the marker from before the reset opened a new process"


def test_a_trip_after_the_reset_is_shared_with_a_process_that_had_not_read_the_reset_yet(
    store: Any,
) -> None:
    a, b = _process(store), _process(store)
    _trip(a[0])
    _rounds(a, b)
    store.send_command("pricing", "reset")
    _rounds(b, n=1)  # b reads the reset first
    assert b[0].state == "closed"
    _trip(b[0])  # the dependency still fails: b trips again, after the reset
    _rounds(b, n=1)  # b writes its new marker
    _rounds(a, b)  # a reads the reset and, in the same round, b's new marker
    assert a[0].state == "open", "a marker written after the reset was ignored"
    assert a[0].last_transition is not None
    assert a[0].last_transition.reason == fleet.SHARED_REASON


class OperatorMidway:
    """``store``, where an operator in this process force-closes the breaker (what
    fleet.send_command does) while the fleet thread reads the markers or writes one."""

    def __init__(self, store: Any, process: tuple[Breaker, FleetPublisher, ManualClock]) -> None:
        self.store, self.process, self.armed = store, process, ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _operator(self, when: str) -> None:
        if self.armed == when:
            self.armed = ""
            b, pub, _clock = self.process
            epoch = pub.applying_here("pricing", "force_close")
            b.force_close()
            pub.sent_here("pricing", self.store.send_command("pricing", "force_close"), epoch)

    def open_until(self, breakers: list[str]) -> dict[str, float]:
        found = self.store.open_until(breakers)
        self._operator("read")  # after the read: the marker read is from before the close
        return dict(found)

    def set_open_until(self, breaker: str, until: float) -> None:
        self._operator("write")  # before the write lands: it lands after the close
        self.store.set_open_until(breaker, until)


def test_a_marker_read_while_this_process_force_closes_does_not_reopen_it(store: Any) -> None:
    a, b = _process(store), _process(store)
    midway = OperatorMidway(store, b)
    b[1].store = midway
    _trip(a[0])
    _rounds(a)  # a writes its marker; b has not read it yet
    midway.armed = "read"
    _rounds(b, a)
    assert not midway.armed
    assert a[0].state == b[0].state == "closed"


def test_a_marker_written_while_this_process_force_closes_opens_no_process(store: Any) -> None:
    a, b = _process(store), _process(store)
    midway = OperatorMidway(store, b)
    b[1].store = midway
    _rounds(a, b)
    _trip(b[0])
    midway.armed = "write"
    _rounds(b, a)
    assert not midway.armed
    assert a[0].state == b[0].state == "closed"
