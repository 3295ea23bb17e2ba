"""A cache command head far ahead of every command in the log (corrupted, hand-edited, or the
log expired under it): the reader says so once and reaches the commands sent after it; a run of
evicted commands below a sound head is still walked, so no command still there is skipped."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore


def _process(store: CacheStore, clock: ManualClock) -> tuple[Breaker, FleetPublisher]:
    b = Breaker("a", clock=clock)
    pub = FleetPublisher(store, lambda: [b], clock=clock, command_poll=0)
    pub.attach(b)
    return b, pub


@pytest.mark.parametrize(
    ("head", "next_seq"),
    [(10**4, 10**4 + 1), (10**12, 10**12 + 1), (2**64, 2)],  # past 2**62: corrupted, absent
    ids=["1e4", "1e12", "2**64"],
)
def test_an_absurd_command_head_is_logged_once_and_later_commands_arrive(
    head: int, next_seq: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    clock = ManualClock(0)
    a, pub = _process(store, clock)
    store.send_command("a", "force_open")
    pub.tick()
    assert a.state == "forced_open"
    store.cache.set("t:cmd:head", head)
    assert store.send_command("a", "reset") == next_seq
    late, late_pub = _process(store, clock)  # starts now: reads from the checkpoint
    for _ in range(5):
        clock.advance(1)
        pub.tick()
        late_pub.tick()
    assert a.state == late.state == "closed"
    said = ("gone from the cache", "corrupted")
    lines = [r for r in caplog.records if any(s in r.getMessage() for s in said)]
    assert 1 <= len(lines) <= 2  # once per reader, not once per missing number
    assert store.send_command("a", "force_open") == next_seq + 1
    clock.advance(1)
    pub.tick()
    late_pub.tick()
    assert a.state == late.state == "forced_open"


def test_a_long_run_of_evicted_commands_below_a_sound_head_skips_none_still_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    clock = ManualClock(0)
    a, pub = _process(store, clock)
    pub.tick()
    for _ in range(300):
        store.send_command("b", "force_open")
    store.send_command("a", "force_open")  # 301
    store.send_command("b", "reset")  # 302
    for seq in range(1, 301):
        store.cache.delete(f"t:cmd:{seq}")  # evicted by a full cache
    clock.advance(1)
    pub.tick()
    assert a.state == "forced_open"
    assert pub._cmd_seq == 302
    assert len([r for r in caplog.records if "gone from the cache" in r.getMessage()]) == 1
