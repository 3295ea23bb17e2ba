"""The fleet thread's "store unavailable" warning names the cause: redis-py's errors repr as
``network:ConnectionError``, with no address and no reason, so the log said nothing useful."""

from __future__ import annotations

import logging

import pytest
import redis

from resilience_django.breakers.state import Breaker
from resilience_django.fleet import FleetPublisher
from resilience_django.fleetstore.redis import RedisStore
from tests.services import free_port
from tests.utils.waiting import wait_for


def test_a_store_outage_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there: every call is refused
    client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)
    publisher = FleetPublisher(RedisStore(client), lambda: [Breaker("down-log")], interval=0.05)
    with caplog.at_level(logging.WARNING, logger="resilience_django"):
        publisher.start()
        try:
            wait_for(lambda: "fleet store unavailable" in caplog.text, timeout=30)
        finally:
            publisher.stop()
    line = next(r.getMessage() for r in caplog.records if "unavailable" in r.getMessage())
    assert "ConnectionError" in line and str(port) in line, line
