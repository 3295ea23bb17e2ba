"""What a database or cache fleet store may hold that no process wrote (a hand-edited row, a
corrupted key): the fleet view and the command log carry on around it, and say so once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience_django import fleet
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.database import DatabaseStore
from resilience_django.models import FleetProcess


def _cache_store() -> CacheStore:
    return CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")


@pytest.mark.django_db
def test_a_corrupted_process_report_in_the_database_does_not_hide_the_others() -> None:
    store = DatabaseStore()
    for pid in (1, 2, 3):
        store.publish(f"host:{pid}", {"host": "host", "pid": pid}, 10)
    FleetProcess.objects.filter(process="host:2").update(report="{truncated")
    FleetProcess.objects.filter(process="host:3").update(report="[1, 2]")
    assert [p["pid"] for p in store.processes(10)] == [1]


@pytest.mark.parametrize(
    "index", ["garbage", {"host:2": "yesterday"}, {2: time.time()}], ids=["str", "time", "key"]
)
def test_a_corrupted_cache_process_index_is_rebuilt_by_the_next_report(index: Any) -> None:
    store = _cache_store()
    store.cache.set("t:procs", index)
    assert store.processes(10) == []
    store.publish("host:1", {"host": "host", "pid": 1}, 10)
    store.cache.set("t:proc:host:3", "not a report")
    store.cache.set("t:procs", {**store.cache.get("t:procs"), "host:3": time.time()})
    assert [p["pid"] for p in store.processes(10)] == [1]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("t:cmd:head", "garbage", id="head-str"),
        pytest.param("t:cmd:head", {"seq": 1}, id="head-dict"),
        pytest.param("t:cmd:standing", "garbage", id="standing-str"),
        pytest.param("t:cmd:standing", {"commands": {}}, id="standing-no-seq"),
        pytest.param("t:cmd:standing", {"seq": "x", "commands": {}}, id="standing-bad-seq"),
        pytest.param("t:cmd:standing", {"seq": 1, "commands": [1]}, id="standing-bad-map"),
    ],
)
def test_a_corrupted_cache_command_head_or_standing_map_counts_as_absent(
    key: str, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = _cache_store()
    clock = ManualClock(0)
    a = Breaker("a", clock=clock)
    pub = FleetPublisher(store, lambda: [a], clock=clock, command_poll=0)
    pub.attach(a)
    store.send_command("a", "force_open")
    store.cache.set(key, value)
    late = Breaker("a", clock=clock)  # a process starting now reads the standing map
    late_pub = FleetPublisher(store, lambda: [late], clock=clock, command_poll=0)
    late_pub.attach(late)
    for _ in range(3):
        pub.tick()
        late_pub.tick()
        clock.advance(1)
    assert a.state == late.state == "forced_open"  # read from the log all the same
    assert caplog.text.count("corrupted") == 1  # once, not every round
    assert store.send_command("a", "reset") == 2  # the log keeps its numbering
    pub.tick()
    late_pub.tick()
    assert a.state == late.state == "closed"


def test_a_report_whose_breakers_are_corrupted_does_not_hide_the_other_rows() -> None:
    good = {"host": "h", "pid": 1, "breakers": [{"name": "a", "state": "closed"}]}
    procs = [
        {"host": "h", "pid": "2", "breakers": [{"name": "a", "state": "open"}]},
        {"host": "h", "pid": 3, "breakers": "garbage"},
        {"host": "h", "pid": 4, "breakers": [["not", "a", "snapshot"], None]},
        good,
    ]
    rows = fleet.breaker_rows(procs)
    assert [(r["pid"], r["state"]) for r in rows] == [("2", "open"), (1, "closed")]
