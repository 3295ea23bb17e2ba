"""A shared breaker that opens while the fleet store is down still tells the other
processes once the store is back (while it is still open)."""

from __future__ import annotations

import pytest

from resilience_django import fleet
from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.redis import RedisStore
from tests.utils.redis_server import redis_server
from tests.utils.waiting import succeeds, wait_for

pytestmark = pytest.mark.usefixtures("no_fleet")


@pytest.mark.redis
def test_a_shared_breaker_opened_during_a_store_outage_opens_the_others_once_it_heals() -> None:
    import redis

    clock = ManualClock(0)
    policy = BreakerPolicy(failure_threshold=1, shared=True, shared_poll=0.2, open_for=60)
    here, there = Breaker("s", policy, clock=clock), Breaker("s", policy, clock=clock)
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            store = RedisStore(client, "t:fleet")
            pub_here = FleetPublisher(store, lambda: [here], clock=clock)
            pub_there = FleetPublisher(store, lambda: [there], clock=clock)
            pub_here.attach(here)
            pub_there.attach(there)
            pub_here.tick()  # commands read: the next poll is not due for a while
            server.stop()
            here.record_failure(here.acquire())
            assert events.flush()
            clock.advance(0.1)
            with pytest.raises(redis.ConnectionError):
                pub_here.tick()  # the transition's round: the marker cannot be written
            server.start()
            clock.advance(0.1)
            wait_for(lambda: succeeds(pub_here.tick), 10, "a round once the store is back")
            clock.advance(0.5)
            wait_for(lambda: succeeds(pub_there.tick), 10, "a round in the other process")
        finally:
            client.close()
    assert here.state == "open"
    assert there.state == "open"
    assert there.last_transition is not None
    assert there.last_transition.reason == fleet.SHARED_REASON
