"""Redis's GCRA works in whole microseconds: an emission interval with a fraction of a
microsecond must be rounded up, never down, or the fleet admits more than the rate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience_django.clock import ManualClock
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import RedisSettings, make_sync_client
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer


@pytest.fixture(scope="module")
def limiter() -> Iterator[RedisLimiter]:
    server = RedisServer().start()
    settings = RedisSettings(url=server.url, socket_timeout=1.0, connect_timeout=1.0)
    client = make_sync_client(settings)
    yield RedisLimiter(client, settings=settings)
    client.close()
    server.stop()


# T = period / limit: 1.67 µs, 142.86 µs (floored, 17 % and 0.6 % more than the rate).
@pytest.mark.parametrize("rate", [Rate(600_000, 1.0), Rate(7_000, 1.0)], ids=str)
def test_a_fractional_interval_never_lets_the_quota_back_sooner_than_the_rate(
    limiter: RedisLimiter, rate: Rate
) -> None:
    cost = 1000  # one request spending a thousand units: the rounding, a thousand times over
    policy = Policy(f"gcra-rate-{rate.limit}", rate, Algorithm.GCRA, burst=cost)
    check = LimitCheck(policy, "client", cost)
    earned_back = cost * rate.period / rate.limit
    first = limiter.decide((check,))
    assert first.allowed
    # The units come back at the rate, not faster; the local kernel says the same.
    assert first.outcomes[0].reset_after >= earned_back
    local = LocalLimiter(clock=ManualClock()).decide((check,))
    assert first.outcomes[0].reset_after == pytest.approx(
        local.outcomes[0].reset_after, abs=cost / 1e6
    )
