"""``LocalLimiter.admit`` with a share: the Redis fallback charges its share through it."""

from __future__ import annotations

import pytest

from resilience_django.clock import ManualClock
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_admit_with_a_share_admits_that_share_of_the_limit(algorithm):
    limiter = LocalLimiter(clock=ManualClock())
    rule = Policy("p", Rate(8, 60.0), algorithm)
    admitted = [limiter.admit(rule, "k", 1, 0.25) for _ in range(4)]
    assert admitted == [True, True, False, False]


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_admit_with_a_share_spends_the_state_decide_reads(algorithm):
    limiter = LocalLimiter(clock=ManualClock())
    rule = Policy("p", Rate(8, 60.0), algorithm)
    assert limiter.admit(rule, "k", 2, 0.25)
    assert not limiter.decide((LimitCheck(rule, "k"),), 0.25).allowed
