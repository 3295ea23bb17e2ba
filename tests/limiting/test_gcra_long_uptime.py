"""GCRA on a monotonic clock that has run for days: ``now`` is large, so ``now + T - now``
is not ``T`` in floats, and that rounding must not refuse a client who has every token."""

from __future__ import annotations

import pytest

from resilience_django.clock import ManualClock
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate

# 11.6 days, 4 months and about a year of uptime (Linux's monotonic clock counts from boot).
UPTIMES = [1e6, 1e7, 3e7]
RATES = [Rate(3, 1.0), Rate(1000, 0.5), Rate(10**6, 1.0), Rate(10**6, 0.5), Rate(1, 86_400.0)]


@pytest.mark.parametrize("uptime", UPTIMES)
@pytest.mark.parametrize("rate", RATES, ids=str)
@pytest.mark.parametrize("burst", [1, 3])
def test_an_idle_key_is_admitted_up_to_its_burst_however_long_the_uptime(
    uptime: float, rate: Rate, burst: int
) -> None:
    clock = ManualClock(uptime)
    limiter = LocalLimiter(clock=clock)
    check = (LimitCheck(Policy("gcra-uptime", rate, Algorithm.GCRA, burst), "client"),)
    for _ in range(3):
        first = limiter.decide(check)
        assert first.allowed, first.outcomes
        assert first.outcomes[0].remaining == burst - 1
        for _ in range(burst - 1):
            limiter.decide(check)
        refused = limiter.decide(check)
        assert not refused.allowed
        assert 0 < refused.retry_after <= rate.period / rate.limit * 1.001
        clock.advance(rate.period * burst)  # idle again: the whole burst is back
