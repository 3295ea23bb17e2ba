"""``FleetPublisher.attach`` racing the fleet thread or another attach of the same breaker: the
commands land in number order, and the breaker has one publisher listener."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from resilience_django import fleet
from resilience_django.breakers.events import Listener
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore
from tests.utils.waiting import holds_within, wait_for

pytestmark = pytest.mark.usefixtures("no_fleet")


def _store() -> CacheStore:
    return CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")


class SlowToForceOpen(Breaker):
    """A breaker whose ``force_open`` waits to be let go (a busy machine's scheduler)."""

    __slots__ = ("entered", "go")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered, self.go = threading.Event(), threading.Event()

    def force_open(self, reason: str = "forced open by an operator") -> None:
        self.entered.set()
        self.go.wait(10)
        super().force_open(reason)


def test_a_waiting_command_applied_by_attach_never_lands_after_a_newer_one() -> None:
    clock = ManualClock(0)
    store = _store()
    x = SlowToForceOpen("x", clock=clock)
    pub = FleetPublisher(store, lambda: [x], clock=clock, command_poll=0)
    store.send_command("x", "force_open")
    pub.tick()  # no breaker "x" here yet: the command waits for it
    store.send_command("x", "reset")
    attaching = threading.Thread(target=pub.attach, args=(x,))
    attaching.start()
    assert x.entered.wait(10)
    clock.advance(1)
    ticking = threading.Thread(target=pub.tick)  # the fleet thread meets the newer command
    ticking.start()
    holds_within(lambda: not ticking.is_alive(), 1.0)  # done, or waiting for attach
    x.go.set()
    attaching.join(10)
    ticking.join(10)
    assert x.state == "closed"  # the state of the command with the higher number


class MeetsAtAddListener(Breaker):
    """Two attaches that both reach ``add_listener`` before either adds (a race)."""

    __slots__ = ("barrier",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = threading.Barrier(2, timeout=1.0)

    def add_listener(self, listener: Listener) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # the attaches do not overlap
            self.barrier.wait()
        super().add_listener(listener)


def test_two_attaches_of_one_breaker_at_once_leave_one_listener() -> None:
    x = MeetsAtAddListener("x")
    pub = FleetPublisher(_store(), lambda: [x])
    threads = [threading.Thread(target=pub.attach, args=(x,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    wait_for(lambda: not any(t.is_alive() for t in threads), 10, "both attaches done")
    assert [f for f in x._listeners if getattr(f, "__self__", None) is pub] == [pub._on_transition]


def test_a_breaker_made_while_the_fleet_restarts_ends_with_the_new_publisher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The registry's hook found the old publisher; the fleet restarted (a settings change)
    # before that publisher's attach ran.  The late attach must not take the breaker from
    # the new publisher, whose listener would then never hear of its transitions.
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": f"attach-{uuid.uuid4().hex}"}}):
        old = fleet.start()
        assert old is not None
        x = Breaker("x")
        registry._breakers["x"] = x  # made; its hook is about to run
        entered, go = threading.Event(), threading.Event()
        attach = FleetPublisher.attach

        def slow_attach(self: FleetPublisher, breaker: Breaker) -> None:
            if self is old:
                entered.set()
                go.wait(10)
            attach(self, breaker)

        monkeypatch.setattr(FleetPublisher, "attach", slow_attach)
        hook = threading.Thread(target=fleet.on_breaker_created, args=(x,))
        hook.start()
        assert entered.wait(10)
        restart = threading.Thread(target=lambda: (fleet.stop(), fleet.start()))
        restart.start()
        holds_within(lambda: not restart.is_alive(), 1.0)  # done, or waiting for the hook
        go.set()
        hook.join(10)
        restart.join(10)
        new = fleet._publisher
        assert new is not None and new is not old
        assert new._on_transition in x._listeners
        fleet.stop()
