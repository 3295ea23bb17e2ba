from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience_django import fleet
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def make(clock: ManualClock):  # type: ignore[no-untyped-def]
    def factory(**kwargs: object) -> Breaker:
        return Breaker("dep", BreakerPolicy(**kwargs), clock=clock)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def no_fleet() -> Iterator[None]:
    """No fleet publisher and no breakers, before and after (the fleet tests)."""
    fleet.stop()
    registry.clear()
    yield
    fleet.stop()
    registry.clear()
