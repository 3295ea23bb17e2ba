"""Half-open trials under faults: trials that start long after the breaker went half-open, trials
cancelled, raising, or out of their caller's budget, from many threads and tasks at once.  Never
more trials at a time than configured, and never a breaker stuck half-open."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from resilience_django.breakers.api import breaker
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker, CircuitOpen
from resilience_django.clock import ManualClock
from resilience_django.deadline import DeadlineExceeded

Make = Callable[..., Breaker]


def _half_open(b: Breaker, clock: ManualClock) -> None:
    b.record_failure(b.acquire())
    assert b.state == "open"
    clock.advance(b.policy.open_for)
    b.poll()  # the fleet thread's round, each second in every process
    assert b.state == "half_open"


def test_a_trial_that_starts_long_after_half_open_is_not_taken_for_stuck(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=30, half_open_calls=1, half_open_max_wait=60)
    _half_open(b, clock)
    clock.advance(600)  # a quiet dependency: no call for ten minutes
    trial = b.acquire()
    clock.advance(0.5)
    b.poll()
    with pytest.raises(CircuitOpen):
        b.acquire()  # the one slot is taken: refused, but no re-trip
    assert b.state == "half_open"
    b.record_success(trial)
    assert b.state == "closed"


def test_a_trial_that_never_finishes_reopens_the_breaker_after_the_wait_from_its_start(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=30, half_open_calls=1, half_open_max_wait=60)
    _half_open(b, clock)
    clock.advance(600)
    b.acquire()  # never reports
    clock.advance(59)
    b.poll()
    assert b.state == "half_open"
    clock.advance(1)
    b.poll()
    assert b.state == "open"


def test_sequential_trials_of_a_quiet_dependency_each_get_the_full_wait(
    make: Make, clock: ManualClock
) -> None:
    b = make(
        failure_threshold=1,
        open_for=30,
        half_open_calls=3,
        close_ratio=1.0,
        half_open_max_wait=60,
    )
    _half_open(b, clock)
    for _ in range(2):
        b.record_success(b.acquire())
        clock.advance(90)
    last = b.acquire()
    clock.advance(1)
    b.poll()
    assert b.state == "half_open"
    b.record_success(last)
    assert b.state == "closed"


@pytest.fixture
def guarded() -> Iterator[Breaker]:
    registry.clear()
    policy = BreakerPolicy(
        failure_threshold=1,
        open_for=0.01,
        half_open_calls=3,
        close_ratio=1.0,
        half_open_max_wait=3600,
    )
    b = Breaker("faulty", policy)
    registry._breakers["faulty"] = b
    b.record_failure(b.acquire())
    deadline = time.monotonic() + 30
    while b.state == "open":
        assert time.monotonic() < deadline
        time.sleep(0.01)
        b.poll()
    yield b
    registry.clear()


async def test_cancelled_and_budget_exhausted_async_trials_give_their_slots_back(
    guarded: Breaker,
) -> None:
    running, peak, gate = 0, 0, asyncio.Event()

    @breaker("faulty")
    async def call(fault: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
            if fault == "deadline":
                raise DeadlineExceeded("the caller's budget ran out")
            return fault
        finally:
            running -= 1

    async def attempt(fault: str) -> str:
        try:
            return await call(fault)
        except CircuitOpen:
            return "refused"

    for round_ in range(5):  # each round: every trial slot ends without a verdict
        tasks = [
            asyncio.create_task(attempt("deadline" if round_ % 2 else "cancel")) for _ in range(50)
        ]
        deadline = time.monotonic() + 30
        while running < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        if round_ % 2:
            gate.set()
        else:
            for task in tasks:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        gate.clear()
        assert peak == 3
        assert guarded.state == "half_open"  # no verdict: neither closed nor re-opened
        assert sum(r == "refused" for r in results) >= 47
    gate.set()
    assert await asyncio.gather(*(attempt("ok") for _ in range(3))) == ["ok"] * 3
    assert guarded.state == "closed"


def test_threads_racing_through_trials_that_raise_or_run_out_never_exceed_the_slots(
    guarded: Breaker,
) -> None:
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    @breaker("faulty")
    def call(i: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            release.wait(30)
            if i % 2:
                raise DeadlineExceeded("the caller's budget ran out")
            raise asyncio.CancelledError
        finally:
            with lock:
                running -= 1

    def attempt(i: int) -> None:
        with contextlib.suppress(CircuitOpen, DeadlineExceeded, asyncio.CancelledError):
            call(i)

    for _ in range(3):
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while running < 3:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        release.set()
        for t in threads:
            t.join(30)
        release.clear()
        assert peak == 3
        assert guarded.state == "half_open"
    tokens = [guarded.acquire() for _ in range(3)]  # every slot is free: nothing holds one
    for token in tokens:
        guarded.record_success(token)
    assert guarded.state == "closed"


def test_a_slow_trial_fails_even_with_a_slow_call_rate_of_its_own(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=30, half_open_calls=1, slow_call=2.0, slow_call_rate=0.5)
    _half_open(b, clock)
    b.record_success(b.acquire(), duration=2.0)
    assert b.state == "open"
