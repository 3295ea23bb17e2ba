from __future__ import annotations

import random
import statistics
from typing import Any

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
            rtt = now - request[1]
            # In flight as the request finishes, itself included (as the bulkhead counts).
            limit.update(rtt, len(inflight))
            inflight.remove(request)
            if step > steps * 3 // 4:
                late.append(rtt)
        if step % int(0.1 / dt) == 0:
            limits.append(limit.limit)
    return limits, late


def settled(limits: list[int], floor: int) -> list[int]:
    """The second half of a run, without the periodic probes at the floor."""
    return [x for x in limits[len(limits) // 2 :] if x > floor]


@pytest.mark.parametrize("capacity", [5, 20, 60])
def test_limit_settles_just_above_the_real_capacity(capacity: int) -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=2, initial_limit=2, max_limit=400, clock=clock)
    limits, late = simulate(limit, clock, capacity=capacity)
    after = settled(limits, limit.min_limit)
    assert after
    # The fixed point is (1 + buffer) x capacity = 1.1 x, plus at most one
    # headroom step (int() rounds the small ones down); the Gradient2
    # controller this replaced sat at 1.5 x capacity + sqrt(limit).
    assert all(capacity <= x <= 1.25 * capacity + 1 for x in after), after
    # Admitted requests' latency stays near the no-load latency plus the buffer.
    late.sort()
    assert late[len(late) // 2] <= 0.050 * 1.25


@pytest.mark.parametrize("buffer", [0.05, 0.25, 0.5])
def test_the_buffer_sets_how_far_above_capacity_the_limit_settles(buffer: float) -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=5, initial_limit=10, buffer=buffer, clock=clock)
    limits, _ = simulate(limit, clock, capacity=40)
    after = settled(limits, limit.min_limit)
    target = (1 + buffer) * 40
    assert 0.95 * target <= statistics.median(after) <= target + target**0.5, after
    assert all(0.9 * target <= x <= target + target**0.5 + 2 for x in after), after


def test_limit_converges_from_above_within_a_few_seconds() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=5, initial_limit=300, max_limit=400, clock=clock)
    limits, _ = simulate(limit, clock, capacity=20, seconds=12.0)
    # The probe at the floor ends within 0.2 s; then 300 slots, 15x capacity.
    assert max(limits[:20]) >= 200
    assert all(20 <= x <= 25 for x in limits[-50:]), limits


def test_limit_converges_from_the_floor_within_a_few_seconds() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=5, initial_limit=5, max_limit=400, clock=clock)
    limits, _ = simulate(limit, clock, capacity=60, seconds=12.0)
    assert all(60 <= x <= 76 for x in limits[-50:]), limits


def test_limit_never_goes_below_the_floor_when_the_capacity_is_below_it() -> None:
    clock = ManualClock()
    limit = AdaptiveLimit(min_limit=8, initial_limit=30, max_limit=100, clock=clock)
    limits, _ = simulate(limit, clock, capacity=3, seconds=20.0)
    # Latency at the floor is already 8/3 of the no-load latency, but the
    # floor is what the operator allowed: the limit rests on it (the probe,
    # taken at the floor, sees that latency as the baseline).
    assert min(limits) == 8
    assert all(x <= 10 for x in limits[len(limits) // 4 :]), limits


def stepping(**kwargs: Any) -> AdaptiveLimit:
    """A limit that ends its probe on one 10 ms sample and steps on every sample."""
    limit = AdaptiveLimit(
        probe_samples=1, window=0.0, window_samples=1, clock=ManualClock(), **kwargs
    )
    limit.update(0.010, inflight=1)
    assert not limit.probing and limit.baseline_rtt == pytest.approx(0.010)
    return limit


def test_past_the_target_the_limit_shrinks_toward_it_without_headroom() -> None:
    limit = stepping(min_limit=2, initial_limit=40)
    # Twice the target latency (10 ms + 10 %): the limit that meets it is 22.
    limit.update(0.022, inflight=40)
    assert limit._estimate == pytest.approx(0.8 * 40 + 0.2 * 20)


def test_within_the_target_the_limit_grows_by_the_headroom() -> None:
    limit = stepping(min_limit=2, initial_limit=36)
    limit.update(0.011, inflight=36)  # exactly at the target
    assert limit._estimate == pytest.approx(36 + 0.2 * 6)


def test_a_limit_pinned_to_the_floor_probes_again_at_once() -> None:
    limit = stepping(min_limit=4, initial_limit=40, probe_interval=60.0, jitter=0)
    clock = limit.clock
    assert isinstance(clock, ManualClock)
    # The work gets 5x slower for good (a slower database, not overload): read
    # against the old baseline it looks like overload and the limit sinks.
    while not limit.probing:
        clock.advance(0.1)
        limit.update(0.050, inflight=max(limit.limit, 1))
    assert clock.now < 10.0  # a few seconds, not the minute to the next probe
    limit.update(0.050, inflight=4)  # the probe's one sample: the new normal
    assert limit.baseline_rtt == pytest.approx(0.050)
    for _ in range(50):
        clock.advance(0.1)
        limit.update(0.050, inflight=limit.limit)
    assert limit.limit > 10  # growing again from the floor


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
        AdaptiveLimit(buffer=0)
