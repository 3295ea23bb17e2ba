"""One round of the fleet thread has three parts (commands, shared open-until markers, this
process's report): a store that keeps failing at one of them still gets the other two."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore

pytestmark = pytest.mark.usefixtures("no_fleet")


def partly_broken(part: str) -> CacheStore:
    """A cache store whose method ``part`` raises, as a store whose part is down would."""
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")

    def down(*args: Any) -> Any:
        raise ConnectionError(f"{part}: store part down")

    setattr(store, part, down)
    return store


def _round(store: CacheStore, *breakers: Breaker, clock: ManualClock) -> FleetPublisher:
    pub = FleetPublisher(store, lambda: list(breakers), clock=clock, command_poll=0)
    for b in breakers:
        pub.attach(b)
    with pytest.raises(ConnectionError):
        pub.tick()  # the failure still reaches the fleet thread, to be logged
    return pub


def test_a_store_whose_command_read_fails_still_gets_the_report_and_the_markers() -> None:
    clock = ManualClock(0)
    store = partly_broken("read_commands")
    policy = BreakerPolicy(failure_threshold=1, shared=True, shared_poll=0.1, open_for=10)
    s = Breaker("s", policy, clock=clock)
    pub = _round(store, s, clock=clock)
    s.record_failure(s.acquire())
    assert events.flush()
    with pytest.raises(ConnectionError):
        pub.tick()  # the transition's round
    assert [p["breakers"][0]["state"] for p in store.processes(10)] == ["open"]
    assert "s" in store.open_until(["s"])  # shared with the other processes all the same


def test_a_store_whose_publishing_fails_still_delivers_commands() -> None:
    clock = ManualClock(0)
    store = partly_broken("publish")
    a = Breaker("a", clock=clock)
    store.send_command("a", "force_open")
    _round(store, a, clock=clock)
    assert a.state == "forced_open"


def test_a_store_whose_marker_read_fails_still_gets_the_report() -> None:
    clock = ManualClock(0)
    store = partly_broken("open_until")
    policy = BreakerPolicy(shared=True, shared_poll=0.1)
    _round(store, Breaker("s", policy, clock=clock), clock=clock)
    assert [p["breakers"][0]["name"] for p in store.processes(10)] == ["s"]
