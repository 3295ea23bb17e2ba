"""An operator's reset or force-close outlives the open-until markers of trips made before it,
however those reach a process: a marker the reset could not delete (the store was down), or one
written just after the reset deleted it (the tripping process read the log a moment before)."""

from __future__ import annotations

import contextlib
import math
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
POLICY = BreakerPolicy(failure_threshold=1, open_for=30, shared=True, shared_poll=0.01)


class Flaky:
    """A store that can go down: every call raises while ``down``."""

    def __init__(self, store: Any) -> None:
        self.store, self.down = store, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if callable(attr) and self.down:

            def fail(*a: Any, **k: Any) -> Any:
                raise ConnectionError("store down")

            return fail
        return attr


class ResetJustBeforeWrite:
    """A store where a third process's reset lands just before the next marker is written."""

    def __init__(self, store: Any) -> None:
        self.store, self.armed = store, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def set_open_until(self, breaker: str, until: float) -> None:
        if self.armed:
            self.armed = False
            self.store.send_command("pricing", "reset")
        self.store.set_open_until(breaker, until)


def _store() -> CacheStore:
    return CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")


def _process(store: Any) -> tuple[Breaker, FleetPublisher, ManualClock]:
    clock = ManualClock(0)
    b = Breaker("pricing", POLICY, clock=clock)
    pub = FleetPublisher(store, lambda: [b], clock=clock, command_poll=0)
    pub.attach(b)
    return b, pub, clock


def _rounds(*procs: Any, n: int = 3) -> None:
    # Each round first at the time the last one left: a trip's marker is written at the time it
    # tripped, as in a process, whose monotonic and wall clocks move together.
    for _ in range(n):
        for _b, pub, clock in procs:
            with contextlib.suppress(ConnectionError):  # the fleet thread logs it, tries again
                pub.tick()
            clock.advance(1)


@pytest.mark.parametrize("action", ["reset", "force_close"])
def test_a_reset_made_while_the_store_is_down_sticks_when_it_returns(action: str) -> None:
    store = _store()
    a = _process(store)
    flaky = Flaky(store)
    b = _process(flaky)
    a[0].record_failure(a[0].acquire())
    assert events.flush(30)
    _rounds(a, b)
    assert b[0].state == "open"
    flaky.down = True
    # What fleet.send_command does in b: apply here; the store raises (logged).
    b[1].applying_here("pricing", action)
    getattr(b[0], action)()
    with pytest.raises(ConnectionError):
        flaky.send_command("pricing", action)
    _rounds(b)
    assert b[0].state == "closed"
    flaky.down = False
    _rounds(b)  # the store is back, with the marker from before the reset
    assert b[0].state == "closed", "the marker from before the reset re-opened the breaker"


def test_a_marker_from_before_a_remote_reset_written_after_it_reopens_nobody() -> None:
    store = _store()
    a = _process(store)
    wrapped = ResetJustBeforeWrite(store)
    b = _process(wrapped)
    _rounds(a, b)
    b[0].record_failure(b[0].acquire())
    assert events.flush(30)
    wrapped.armed = True
    _rounds(b, n=1)  # b read the log (no reset yet); the reset lands; then b's marker
    assert not wrapped.armed
    _rounds(a, b)
    assert (a[0].state, b[0].state) == ("closed", "closed")


def test_a_trip_after_a_reset_is_still_shared() -> None:
    store = _store()
    a, b = _process(store), _process(store)
    _rounds(a, b)
    store.send_command("pricing", "reset")  # a third process's admin
    _rounds(a, b)
    a[0].record_failure(a[0].acquire())  # a new trip, after the reset
    assert events.flush(30)
    _rounds(a, b)
    assert b[0].state == "open"


@pytest.mark.parametrize("at", [math.inf, math.nan, "soon", 4e9], ids=["inf", "nan", "str", "far"])
def test_a_reset_whose_time_is_no_time_does_not_silence_later_trips(at: object) -> None:
    # A hand-edited or corrupted command: its time counts as when this process read it.
    store = _store()
    a, b = _process(store), _process(store)
    _rounds(a, b)
    seq = store.send_command("pricing", "reset")
    key = f"{store.p}:cmd:{seq}"
    store.cache.set(key, {**store.cache.get(key), "at": at}, None)
    _rounds(a, b)
    a[0].record_failure(a[0].acquire())  # a trip after the reset
    assert events.flush(30)
    _rounds(a, b)
    assert b[0].state == "open"
