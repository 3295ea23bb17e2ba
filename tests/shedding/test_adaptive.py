from __future__ import annotations

import random

import pytest

from resilience_django.clock import ManualClock
from resilience_django.shedding.adaptive import AdaptiveLimit


def simulate(
    limit: AdaptiveLimit,
    clock: ManualClock,
    *,
    capacity: int,
    base: float = 0.050,
    seconds: float = 40.0,
    dt: float = 0.002,
    seed: int = 7,
) -> tuple[list[int], list[float]]:
    """A processor-sharing server with ``capacity`` workers under unlimited demand.

    The bulkhead is always full (demand exceeds any limit), so each step
    admits up to the limit; with ``n`` requests in flight each progresses at
    ``min(1, capacity / n)``: latency rises once the limit passes capacity.
    Returns the limit every 100 ms and the latencies seen in the last quarter.
    """
    rnd = random.Random(seed)
    inflight: list[list[float]] = []  # [work left, started at]
    limits: list[int] = []
    late: list[float] = []
    steps = int(seconds / dt)
    for step in range(steps):
        now = step * dt
        clock.now = now
        while len(inflight) < limit.limit:
            inflight.append([base * rnd.uniform(0.8, 1.2), now])
        rate = min(1.0, capacity / len(inflight))
        finished = []
        for request in inflight:
            request[0] -= rate * dt
            if request[0] <= 0:
                finished.append(request)
        for request in finished:
            inflight.remove(request)
            rtt = now - request[1]
            limit.update(rtt, len(inflight))
            if step > steps * 3 // 4:
                late.append(rtt)
        if step % int(0.1 / dt) == 0:
            limits.append(limit.limit)
    return limits, late


@pytest.mark.parametrize("tolerance", [1.0, 1.5])
def test_limit_settles_near_capacity_times_the_rtt_tolerance(tolerance: float) -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(
        min_limit=5, initial_limit=10, rtt_tolerance=tolerance, probe_interval=10.0, clock=clock
    )
    capacity = 20
    limits, late = simulate(limit, clock, capacity=capacity)
    settled = limits[len(limits) // 2 :]
    # Fixed point: latency = tolerance * no-load latency, i.e. tolerance *
    # capacity in flight, plus the sqrt(limit) headroom Gradient2 allows.
    target = tolerance * capacity
    outside_probes = [x for x in settled if x > limit.min_limit]
    assert outside_probes
    assert all(0.9 * target <= x <= target + 2 * (target**0.5) + 2 for x in outside_probes)
    # Admitted requests' latency stays near tolerance * no-load latency.
    late.sort()
    p50 = late[len(late) // 2]
    assert p50 <= 0.050 * tolerance * 1.4


def test_limit_does_not_drift_to_the_maximum_under_sustained_overload() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=5, initial_limit=10, probe_interval=5.0, clock=clock)
    limits, _ = simulate(limit, clock, capacity=20, seconds=60.0)
    assert max(limits[len(limits) // 4 :]) < 60 < limit.max_limit


def test_limit_grows_toward_the_maximum_while_latency_stays_flat() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=5, initial_limit=10, max_limit=40, clock=clock)
    limits, _ = simulate(limit, clock, capacity=1000, seconds=20.0)
    assert limits[-1] == 40


def test_first_probe_runs_at_the_floor_and_sets_the_baseline() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=4, initial_limit=12, probe_samples=3, clock=clock)
    assert limit.limit == 4 and limit.probing and limit.baseline_rtt is None
    limit.update(0.5, inflight=10)  # admitted before the floor applied: ignored
    for rtt in (0.010, 0.020, 0.030):
        limit.update(rtt, inflight=3)
    assert not limit.probing
    assert limit.baseline_rtt == pytest.approx(0.020)
    assert limit.limit == 12


def test_periodic_probe_drops_to_the_floor_then_restores_the_estimate() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(
        min_limit=4, initial_limit=12, probe_samples=2, probe_interval=10.0, jitter=0, clock=clock
    )
    limit.update(0.01, 1)
    limit.update(0.01, 1)
    assert limit.limit == 12
    clock.advance(10.0)
    assert limit.update(0.01, 1) == 4
    limit.update(0.02, 1)
    limit.update(0.02, 1)
    assert limit.limit == 12 and limit.baseline_rtt == pytest.approx(0.02)


def test_app_limited_traffic_does_not_grow_the_limit() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=4, initial_limit=20, probe_samples=1, clock=clock)
    limit.update(0.01, 1)
    for _ in range(1000):
        clock.advance(0.01)
        limit.update(0.01, inflight=3)  # far below half the limit
    assert limit.limit == 20


def test_limit_never_goes_below_the_floor() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=8, initial_limit=30, probe_samples=1, clock=clock)
    limit.update(0.01, 1)
    for _ in range(2000):
        clock.advance(0.01)
        limit.update(5.0, inflight=30)  # 500x slower than the baseline
    assert limit.limit == 8


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimit(min_limit=10, max_limit=5)
    with pytest.raises(ValueError):
        AdaptiveLimit(smoothing=0)
    with pytest.raises(ValueError):
        AdaptiveLimit(rtt_tolerance=0.5)
