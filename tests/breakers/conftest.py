from __future__ import annotations

import pytest

from resilience_django.breakers.policy import BreakerPolicy
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
