"""A rolling deploy that changes a shared breaker's open time: processes with the old policy and
processes with the new one run side by side, against a real Redis fleet store.  Each side follows
the other's open-until markers, for no longer at a time than its own policy opens for."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url

pytestmark = [pytest.mark.usefixtures("no_fleet"), pytest.mark.redis]


@pytest.fixture
def store() -> Iterator[RedisStore]:
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    yield store
    keys = list(client.scan_iter(match=store.p + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _process(store: RedisStore, open_for: float) -> tuple[Breaker, FleetPublisher, ManualClock]:
    clock = ManualClock(0)
    policy = BreakerPolicy(failure_threshold=1, open_for=open_for, shared=True, shared_poll=0.01)
    b = Breaker("pricing", policy, clock=clock)
    pub = FleetPublisher(store, lambda: [b], clock=clock, command_poll=0)
    pub.attach(b)
    return b, pub, clock


def _trip(b: Breaker) -> None:
    b.record_failure(b.acquire())
    assert b.state == "open"
    assert events.flush(30)  # the fleet thread hears of the trip through its listener


def test_old_processes_follow_a_marker_of_a_new_policy_that_opens_for_far_longer(
    store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    old, old_pub, old_clock = _process(store, open_for=30)
    new, new_pub, _ = _process(store, open_for=900)  # open_for raised by 870 s
    _trip(new)
    new_pub.tick()  # writes the marker: now + 900 s
    until = store.open_until(["pricing"])["pricing"]
    assert until > time.time() + 800
    old_pub.tick()
    assert old.state == "open"  # not ignored as a marker "no process wrote"
    assert 0 < old.snapshot()["retry_after"] <= 30  # its own longest open time at most
    assert "ignored open-until" not in caplog.text
    # Its own open time over, the fleet's marker still stands: it opens again.
    old_clock.advance(31)
    old_pub.tick()
    assert old.state == "open"
    assert old.last_transition is not None
    assert old.last_transition.reason == "opened by another process"


def test_new_processes_follow_a_marker_of_an_old_policy_that_opened_for_far_longer(
    store: RedisStore,
) -> None:
    old, old_pub, _ = _process(store, open_for=900)
    new, new_pub, _ = _process(store, open_for=30)  # open_for lowered by 870 s
    _trip(old)
    old_pub.tick()
    new_pub.tick()
    assert new.state == "open"
    assert 0 < new.snapshot()["retry_after"] <= 30
