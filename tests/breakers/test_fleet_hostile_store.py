"""What a fleet store may hold that no process wrote: hand-edited or corrupted command entries,
open-until markers that are not a sane time.  The fleet thread skips them (and says so) and keeps
applying the commands and markers that are sound."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url

pytestmark = pytest.mark.usefixtures("no_fleet")


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    yield store
    keys = list(client.scan_iter(match=store.p + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _publisher(store: Any, *breakers: Breaker, clock: ManualClock) -> FleetPublisher:
    pub = FleetPublisher(store, lambda: list(breakers), clock=clock, command_poll=0)
    for b in breakers:
        pub.attach(b)
    return pub


def test_malformed_redis_command_entries_are_skipped_and_later_commands_applied(
    redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(0)
    a = Breaker("a", clock=clock)
    pub = _publisher(redis_store, a, clock=clock)
    redis_store.send_command("a", "force_open")
    pub.tick()
    assert a.state == "forced_open"
    # Hand-edited entries in the log, each with its own number: not JSON, not an object,
    # an object with no breaker.
    client = redis_store.client
    seq_key, log_key, standing_key = redis_store._cmd_keys
    for entry in (b"{not json", json.dumps([1, 2]), json.dumps({"seq": 4, "action": "reset"})):
        client.zadd(log_key, {entry: client.incr(seq_key)})
    client.hset(standing_key, "b", b"garbage")
    assert redis_store.send_command("a", "reset") == 5
    clock.advance(1)
    pub.tick()
    assert a.state == "closed"
    assert pub.malformed_commands == 3
    assert "malformed" in caplog.text
    # A process starting now reads the standing commands, the corrupted one among them.
    late = Breaker("a", clock=clock)
    late_pub = _publisher(redis_store, late, clock=clock)
    late_pub.tick()
    assert late_pub.malformed_commands == 1
    assert {p["pid"] for p in redis_store.processes(10)}  # it published all the same


@pytest.mark.parametrize(
    "entry",
    [pytest.param("garbage", id="str"), pytest.param({"seq": 2}, id="no-breaker"),
     pytest.param({"seq": 2, "breaker": ["a"], "action": "reset"}, id="breaker-not-str")],
)  # fmt: skip
def test_a_malformed_cache_command_entry_does_not_stall_the_fleet_thread(entry: Any) -> None:
    clock = ManualClock(0)
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    a = Breaker("a", clock=clock)
    pub = _publisher(store, a, clock=clock)
    store.send_command("a", "force_open")
    pub.tick()
    store.cache.set(store._slot(2), entry)
    store.cache.set(store._head, 2)
    assert store.send_command("a", "reset") == 3
    clock.advance(1)
    pub.tick()
    assert a.state == "closed"
    assert pub.malformed_commands == 1


def _shared(clock: ManualClock) -> Breaker:
    policy = BreakerPolicy(failure_threshold=1, shared=True, shared_poll=0.1, open_for=10)
    return Breaker("s", policy, clock=clock)


@pytest.mark.parametrize(
    "marker", [math.inf, math.nan, 1e308, "garbage", time.time() + 10**9], ids=repr
)
def test_an_open_until_marker_that_is_no_sane_time_is_ignored(
    marker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(0)
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    s = _shared(clock)
    pub = _publisher(store, s, clock=clock)
    store.cache.set("t:open:s", marker)
    pub.tick()
    assert s.state == "closed"
    assert "open-until" in caplog.text
    s.acquire()  # admitted: no CircuitOpen with an endless Retry-After


def test_a_redis_marker_that_is_not_a_number_is_ignored(redis_store: RedisStore) -> None:
    clock = ManualClock(0)
    s = _shared(clock)
    pub = _publisher(redis_store, s, clock=clock)
    redis_store.client.set(f"{redis_store.p}:open:s", b"soon")
    pub.tick()
    assert s.state == "closed"
    redis_store.set_open_until("s", time.time() + 5)
    clock.advance(1)
    pub.tick()
    assert s.state == "open"


def test_a_marker_further_ahead_than_the_policy_opens_for_its_longest_open_time() -> None:
    # Another host's clock ahead of ours, or another policy there: open, for no longer
    # than this breaker's own longest open time.
    clock = ManualClock(0)
    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    s = _shared(clock)
    pub = _publisher(store, s, clock=clock)
    store.set_open_until("s", time.time() + 200)
    pub.tick()
    assert s.state == "open"
    assert 0 < s.snapshot()["retry_after"] <= 10
    assert events.flush()


def test_a_corrupted_process_report_in_redis_does_not_hide_the_others(
    redis_store: RedisStore,
) -> None:
    redis_store.publish("host:1", {"host": "host", "pid": 1, "breakers": []}, 10)
    redis_store.client.set(f"{redis_store.p}:proc:host:2", b"{truncated")
    redis_store.client.zadd(f"{redis_store.p}:procs", {"host:2": time.time()})
    assert [p["pid"] for p in redis_store.processes(10) if isinstance(p, dict)] == [1]
