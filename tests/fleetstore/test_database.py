"""The database fleet store: the version, process reports, the command log, open markers."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from resilience_django.fleetstore import base
from resilience_django.fleetstore.database import DatabaseStore
from resilience_django.models import FleetCommand, FleetProcess, FleetValue, LimitRule

pytestmark = pytest.mark.django_db


def test_version_changes_with_each_bump_and_with_an_update_that_sets_updated_at() -> None:
    store = DatabaseStore()
    assert store.version() is None  # nothing bumped yet
    store.bump_version("one")
    first = store.version()
    store.bump_version("two")
    second = store.version()
    assert None not in (first, second) and first != second
    assert store.version() == second  # unchanged: the same value, so no reload
    LimitRule.objects.create(name="api", rate="5/s")
    created = store.version()
    assert created != second
    # QuerySet.update() sends no signal: setting updated_at is what makes it seen.
    LimitRule.objects.filter(name="api").update(
        rate="1/s", updated_at=timezone.now() + timedelta(seconds=1)
    )
    assert store.version() != created


def test_processes_silent_longer_than_the_ttl_are_not_listed_and_are_deleted() -> None:
    store = DatabaseStore()
    store.publish("host:1", {"pid": 1}, 10)
    store.publish("host:2", {"pid": 2}, 10)
    store.publish("host:2", {"pid": 2, "again": True}, 10)  # one row per process
    assert sorted(p["pid"] for p in store.processes(10)) == [1, 2]
    FleetProcess.objects.filter(process="host:1").update(
        updated_at=timezone.now() - timedelta(seconds=30)
    )
    assert store.processes(10) == [{"pid": 2, "again": True}]
    store.housekeeping(10)
    assert list(FleetProcess.objects.values_list("process", flat=True)) == ["host:2"]


def test_commands_are_numbered_in_order_and_a_new_reader_starts_from_each_latest() -> None:
    store = DatabaseStore()
    v1 = store.send_command("a", "force_open")
    v2 = store.send_command("a", "reset")
    v3 = store.send_command("b", "disable")
    assert v1 < v2 < v3
    batch = store.read_commands(None)  # a process starting now
    assert batch.seen == v3 and batch.log == []
    assert {k: (v["seq"], v["action"]) for k, v in (batch.standing or {}).items()} == {
        "a": (v2, "reset"),
        "b": (v3, "disable"),
    }
    batch = store.read_commands(v1 - 1)  # a process that was there all along
    assert [(c["seq"], c["breaker"], c["action"]) for c in batch.log] == [
        (v1, "a", "force_open"),
        (v2, "a", "reset"),
        (v3, "b", "disable"),
    ]
    assert batch.standing is None and batch.seen == v3
    assert store.read_commands(v3) == (None, [], v3, False, None)


def test_commands_older_than_a_day_are_deleted_but_each_breakers_latest_stays() -> None:
    store = DatabaseStore()
    first = store.send_command("a", "force_open")
    store.send_command("a", "disable")
    store.send_command("b", "force_open")
    FleetCommand.objects.update(at=time.time() - base.COMMAND_TTL - 60)
    store.housekeeping(10)
    assert list(FleetCommand.objects.order_by("id").values_list("breaker", "action")) == [
        ("a", "disable"),
        ("b", "force_open"),
    ]
    # A reader that fell behind the deletion still ends in every breaker's last state.
    late = store.read_commands(first - 1)
    assert [(c["breaker"], c["action"]) for c in late.log] == [
        ("a", "disable"),
        ("b", "force_open"),
    ]


def test_open_markers_are_read_until_they_expire_and_then_deleted() -> None:
    store = DatabaseStore()
    until = time.time() + 30
    store.set_open_until("shared", until)
    store.set_open_until("x" * 300, until)  # a name longer than the key column
    store.set_open_until("past", time.time() - 1)  # nothing to share
    assert store.open_until(["shared", "x" * 300, "past", "other"]) == {
        "shared": pytest.approx(until),
        "x" * 300: pytest.approx(until),
    }
    FleetValue.objects.filter(key="open:shared").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert set(store.open_until(["shared"])) == set()
    store.housekeeping(10)
    assert not FleetValue.objects.filter(key="open:shared").exists()
