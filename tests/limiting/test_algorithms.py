"""The kernels' semantics, with an injected clock, and their bounds as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience_django.clock import ManualClock
from resilience_django.limiting.algorithms import (
    SLIDING_WINDOW_BUCKETS,
    Gcra,
    SlidingWindow,
    TokenBucket,
    kernel_for,
)
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.units import Rate

EPS = 1e-6


def run(kernel, times, cost=1):
    """Admission verdicts and infos for arrivals at ``times`` on one key."""
    state = kernel.new_state(times[0]) if times else None
    verdicts = []
    for t in times:
        allowed = kernel.acquire(state, t, cost)
        verdicts.append((allowed, *kernel.info(state, t, cost, allowed)))
    return verdicts


def test_sliding_window_admits_exactly_limit_in_a_burst_then_reports_retry():
    kernel = SlidingWindow(limit=5, period=10.0)
    out = run(kernel, [3.0] * 7)
    assert [o[0] for o in out] == [True] * 5 + [False] * 2
    assert [o[1] for o in out] == [4, 3, 2, 1, 0, 0, 0]
    # Bucket width 1 s: everything sits in bucket 3, which leaves at t = 13.
    _, _, reset_after, retry_after = out[-1]
    assert reset_after == pytest.approx(10.0)
    assert retry_after == pytest.approx(10.0)


def test_sliding_window_frees_old_buckets_one_by_one():
    kernel = SlidingWindow(limit=3, period=10.0)
    state = kernel.new_state(0.0)
    assert kernel.acquire(state, 0.5, 1)  # bucket 0
    assert kernel.acquire(state, 4.5, 1)  # bucket 4
    assert kernel.acquire(state, 9.5, 1)  # bucket 9
    assert not kernel.acquire(state, 9.9, 1)
    _, reset_after, retry_after = kernel.info(state, 9.9, 1, False)
    assert reset_after == pytest.approx(0.1)  # bucket 0 leaves at t = 10
    assert retry_after == pytest.approx(0.1)
    assert kernel.acquire(state, 10.0, 1)  # bucket 0 has left
    assert not kernel.acquire(state, 13.9, 1)
    assert kernel.acquire(state, 14.0, 1)  # bucket 4 has left


def test_sliding_window_retry_after_waits_for_enough_buckets_for_the_cost():
    kernel = SlidingWindow(limit=4, period=10.0)
    state = kernel.new_state(0.0)
    for t in (0.0, 1.0, 2.0, 3.0):
        assert kernel.acquire(state, t, 1)
    assert not kernel.acquire(state, 3.5, 3)
    _, reset_after, retry_after = kernel.info(state, 3.5, 3, False)
    assert reset_after == pytest.approx(6.5)  # bucket 0 leaves at 10
    assert retry_after == pytest.approx(8.5)  # three must leave: bucket 2 at 12
    assert not kernel.acquire(state, 11.99, 3)
    assert kernel.acquire(state, 12.0, 3)


def test_sliding_window_forgets_everything_after_a_full_period_idle():
    kernel = SlidingWindow(limit=2, period=1.0)
    state = kernel.new_state(0.0)
    assert kernel.acquire(state, 0.0, 2)
    assert not kernel.acquire(state, 0.5, 1)
    assert kernel.acquire(state, 100.0, 2)
    assert kernel.info(state, 100.0, 1, True)[0] == 0


def test_sliding_window_cost_above_limit_never_fits_and_says_one_period():
    kernel = SlidingWindow(limit=2, period=30.0)
    state = kernel.new_state(0.0)
    assert not kernel.acquire(state, 0.0, 3)
    assert kernel.info(state, 0.0, 3, False) == (2, 0.0, 30.0)


def test_token_bucket_starts_full_and_refills_at_rate():
    kernel = TokenBucket(limit=10, period=10.0, capacity=3)  # 1 token/s, burst 3
    state = kernel.new_state(0.0)
    assert [kernel.acquire(state, 0.0, 1) for _ in range(4)] == [True, True, True, False]
    assert kernel.info(state, 0.0, 1, False) == (0, pytest.approx(3.0), pytest.approx(1.0))
    assert not kernel.acquire(state, 0.99, 1)
    assert kernel.acquire(state, 1.0, 1)
    assert kernel.acquire(state, 100.0, 1)
    assert kernel.info(state, 100.0, 1, True)[0] == 2  # capped at capacity


def test_gcra_burst_then_one_per_emission_interval():
    kernel = Gcra(limit=10, period=10.0, capacity=3)  # T = 1 s, tau = 3 s
    state = kernel.new_state(0.0)
    assert [kernel.acquire(state, 0.0, 1) for _ in range(4)] == [True, True, True, False]
    remaining, reset_after, retry_after = kernel.info(state, 0.0, 1, False)
    assert (remaining, reset_after, retry_after) == (0, pytest.approx(3.0), pytest.approx(1.0))
    assert not kernel.acquire(state, 0.99, 1)
    assert kernel.acquire(state, 1.0, 1)
    assert kernel.acquire(state, 100.0, 1)
    assert kernel.info(state, 100.0, 1, True)[0] == 2


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_share_scales_limit_and_burst_down_but_never_below_one(algorithm):
    policy = Policy("p", Rate(10, 60.0), algorithm, burst=10)
    assert kernel_for(policy, 0.5).limit == 5
    assert kernel_for(policy, 0.01).limit == 1
    if algorithm is not Algorithm.SLIDING_WINDOW:
        assert kernel_for(policy, 0.25).capacity == 2


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_peek_then_consume_matches_acquire(algorithm):
    a = kernel_for(Policy("p", Rate(3, 1.0), algorithm))
    sa, sb = a.new_state(0.0), a.new_state(0.0)
    clock = ManualClock()
    for _ in range(20):
        now = clock()
        a.advance(sb, now)
        fits = a.fits(sb, now, 1)
        if fits:
            a.consume(sb, now, 1)
        assert a.acquire(sa, now, 1) == fits
        assert sa == sb
        clock.advance(0.13)


# Arrivals: gaps in milliseconds (0 = same instant), so bursts are common.
gaps = st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=120)
limits = st.integers(min_value=1, max_value=8)


def admitted_times(kernel, gaps_ms):
    t = 0.0
    state = kernel.new_state(0.0)
    out = []
    for gap in gaps_ms:
        t += gap / 1000
        if kernel.acquire(state, t, 1):
            out.append(t)
    return out


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, limit=limits, period_s=st.sampled_from([0.5, 1.0, 3.0]))
def test_sliding_window_never_exceeds_its_bound(gaps, limit, period_s):
    kernel = SlidingWindow(limit, period_s)
    times = admitted_times(kernel, gaps)
    short = period_s * (SLIDING_WINDOW_BUCKETS - 1) / SLIDING_WINDOW_BUCKETS
    for i, start in enumerate(times):
        in_short = sum(1 for t in times[i:] if t - start <= short - EPS)
        in_period = sum(1 for t in times[i:] if t - start <= period_s - EPS)
        assert in_short <= limit
        assert in_period <= 2 * limit


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, limit=limits, burst=st.integers(1, 8), period_s=st.sampled_from([0.7, 1.0, 3.0]))
@pytest.mark.parametrize("cls", [TokenBucket, Gcra])
def test_token_bucket_and_gcra_never_exceed_burst_plus_rate_times_elapsed(
    cls, gaps, limit, burst, period_s
):
    kernel = cls(limit, period_s, burst)
    rate = limit / period_s
    times = admitted_times(kernel, gaps)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - start) + EPS


@settings(max_examples=100, deadline=None)
@given(gaps=gaps, limit=limits)
@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_request_after_a_full_idle_period_is_always_admitted(algorithm, gaps, limit):
    kernel = kernel_for(Policy("p", Rate(limit, 1.0), algorithm))
    state = kernel.new_state(0.0)
    t = 0.0
    for gap in gaps:
        t += gap / 1000
        kernel.acquire(state, t, 1)
    assert kernel.acquire(state, t + 1.0 + 1e-3, 1)


@settings(max_examples=100, deadline=None)
@given(gaps=gaps, limit=limits)
@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_retry_after_is_exactly_when_the_request_would_pass(algorithm, gaps, limit):
    kernel = kernel_for(Policy("p", Rate(limit, 1.0), algorithm))
    state = kernel.new_state(0.0)
    t = 0.0
    for gap in gaps:
        t += gap / 1000
        if not kernel.acquire(state, t, 1):
            retry_after = kernel.info(state, t, 1, False)[2]
            assert retry_after > 0
            probe = list(state)
            assert not kernel.acquire(probe, t + retry_after * 0.99 - 1e-6, 1)
            probe = list(state)
            assert kernel.acquire(probe, t + retry_after + 1e-6, 1)


@pytest.mark.parametrize("algorithm", [Algorithm.TOKEN_BUCKET, Algorithm.GCRA])
@pytest.mark.parametrize("use_outcome", [False, True])
def test_a_burst_at_one_instant_admits_exactly_the_capacity_despite_rounding(
    algorithm, use_outcome
):
    # Periods and limits whose emission interval is not a binary fraction: the
    # sums of intervals round above the tolerance unless the slack is applied.
    for limit in (3, 7, 10, 13, 49):
        for period in (0.3, 1.0, 7.0, 60.0):
            policy = Policy("p", Rate(limit, period), algorithm)
            kernel = kernel_for(policy)
            state = kernel.new_state(1000.1)
            check = LimitCheck(policy, "k")
            admitted = sum(
                (kernel.outcome(state, 1000.1, check).allowed if use_outcome
                 else kernel.acquire(state, 1000.1, 1))
                for _ in range(limit + 2)
            )  # fmt: skip
            assert admitted == limit, (limit, period)


policies = st.builds(
    Policy,
    name=st.just("p"),
    rate=st.builds(
        Rate,
        limit=st.integers(1, 50),
        # Integer periods too: Rate(5, 60) is as valid as Rate(5, 60.0).
        period=st.sampled_from([0.5, 1.0, 3.0, 10.0, 60.0, 86400.0, 1, 60]),
    ),
    algorithm=st.sampled_from(list(Algorithm)),
    burst=st.one_of(st.none(), st.integers(1, 80)),
)
# Steps of the clock, some backwards (a clock may be stepped), some across many windows.
steps = st.lists(
    st.tuples(
        st.one_of(st.floats(0.0, 0.3), st.floats(-0.5, 0.0), st.floats(0.0, 200.0), st.just(0.0)),
        st.integers(1, 6),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    policy=policies, share=st.sampled_from([1.0, 0.5, 0.34]), start=st.floats(0, 1e6), script=steps
)
def test_outcome_answers_as_acquire_then_info_and_leaves_the_same_state(
    policy, share, start, script
):
    """``outcome`` is the store's hot path written out in full; it must not drift
    from the steps it stands for (``acquire`` then ``info``), which the
    multi-check path and the docs describe."""
    kernel = kernel_for(policy, share)
    fast, steps_ = kernel.new_state(start), kernel.new_state(start)
    now = start
    for step, cost in script:
        now += step
        check = LimitCheck(policy, "k", cost)
        got = kernel.outcome(fast, now, check)
        allowed = kernel.acquire(steps_, now, cost)
        remaining, reset_after, retry_after = kernel.info(steps_, now, cost, allowed)
        assert got.check is check
        assert (got.allowed, got.remaining) == (allowed, remaining)
        assert got.reset_after == pytest.approx(reset_after, abs=1e-9)
        assert got.retry_after == pytest.approx(retry_after, abs=1e-9)
        assert fast == steps_
