from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.breakers import events
from resilience_django.breakers.events import Transition
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker, CircuitOpen
from resilience_django.clock import ManualClock
from resilience_django.deadline import DeadlineExceeded

Make = Callable[..., Breaker]


def fail(b: Breaker, n: int = 1, duration: float | None = None) -> None:
    for _ in range(n):
        b.record_failure(b.acquire(), duration)


def succeed(b: Breaker, n: int = 1, duration: float | None = None) -> None:
    for _ in range(n):
        b.record_success(b.acquire(), duration)


def trip(b: Breaker) -> None:
    fail(b, b.policy.failure_threshold or 1)
    assert b.state == "open"


def test_trips_after_failure_threshold_consecutive_failures(make: Make) -> None:
    b = make(failure_threshold=3, error_rate=None)
    fail(b, 2)
    succeed(b)  # a success breaks the run
    fail(b, 2)
    assert b.state == "closed"
    fail(b)
    assert b.state == "open"
    assert b.last_transition is not None and "3 consecutive" in b.last_transition.reason


def test_trips_on_error_rate_only_once_min_calls_seen(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=None, error_rate=0.5, min_calls=10, window=10)
    for _ in range(4):
        fail(b)
        succeed(b)
    assert b.state == "closed"  # 50% but only 8 calls
    succeed(b)
    fail(b)  # 10 calls, 5 failures: at the rate, not above it
    assert b.state == "closed"
    fail(b)  # 11 calls, 6 failures: above 50%
    assert b.state == "open"


def test_error_rate_forgets_calls_that_left_the_window(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=None, error_rate=0.5, min_calls=4, window=5)
    fail(b, 3)
    clock.advance(6)
    succeed(b, 3)
    fail(b)  # 1 of 4 in the window
    assert b.state == "closed"


def test_slow_calls_count_as_failures_without_a_slow_call_rate(make: Make) -> None:
    b = make(failure_threshold=2, error_rate=None, slow_call=1.0)
    succeed(b, 2, duration=1.5)
    assert b.state == "open"


def test_trips_on_slow_call_rate(make: Make) -> None:
    b = make(
        failure_threshold=None, error_rate=None, slow_call=1.0, slow_call_rate=0.5, min_calls=4
    )
    succeed(b, 2, duration=0.1)
    succeed(b, 2, duration=2.0)
    assert b.state == "closed"  # 2 of 4 slow: at the rate, not above it
    succeed(b, 1, duration=2.0)
    assert b.state == "open" and "slow-call rate" in b.last_transition.reason  # type: ignore[union-attr]


def test_trips_on_ewma_when_a_second_closes(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=None, error_rate=None, ewma_alpha=0.5, ewma_threshold=0.6)
    fail(b, 3)
    clock.advance(1)
    succeed(b)  # closes a second at 100%: EWMA 0.5
    assert b.state == "closed"
    fail(b, 3)
    clock.advance(1)
    succeed(b)  # EWMA 0.5 + 0.5 * (0.75 - 0.5) ... >= 0.6
    assert b.state == "open" and "EWMA" in b.last_transition.reason  # type: ignore[union-attr]


def test_the_first_call_after_a_long_idle_spell_does_not_trip_on_old_failures(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=None, error_rate=None, ewma_alpha=0.6, ewma_threshold=0.5, window=60)
    fail(b, 2)  # the EWMA learns of this second only when it closes, at the next call
    clock.advance(3600)
    succeed(b)
    assert b.state == "closed"
    clock.advance(1)
    fail(b, 2)
    clock.advance(30)  # within the window: still news
    succeed(b)
    assert b.state == "open"


def test_open_rejects_with_retry_after_then_goes_half_open(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=30)
    trip(b)
    clock.advance(10)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_after == pytest.approx(20)
    clock.advance(20)
    b.acquire()
    assert b.state == "half_open"


def test_half_open_closes_when_close_ratio_of_trials_succeed(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=4, close_ratio=0.75)
    trip(b)
    clock.advance(1)
    tokens = [b.acquire() for _ in range(4)]
    b.record_failure(tokens[0])
    b.record_success(tokens[1])
    b.record_success(tokens[2])
    assert b.state == "half_open"
    b.record_success(tokens[3])
    assert b.state == "closed"


def test_half_open_reopens_as_soon_as_closing_is_impossible(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=4, close_ratio=0.75)
    trip(b)
    clock.advance(1)
    tokens = [b.acquire() for _ in range(4)]
    b.record_failure(tokens[0])
    assert b.state == "half_open"
    b.record_failure(tokens[1])
    assert b.state == "open"


def test_open_time_grows_with_each_retrip_up_to_the_cap(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=10, open_for_max=25, half_open_calls=1)
    trip(b)
    opened_for = []
    for _ in range(3):
        with pytest.raises(CircuitOpen) as info:
            b.acquire()
        opened_for.append(info.value.retry_after)
        clock.advance(info.value.retry_after)
        fail(b)  # the single trial fails
    assert opened_for == [10, 20, 25]
    clock.advance(25)
    succeed(b)
    assert b.state == "closed"
    trip(b)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_after == 10  # growth resets after a close


def test_half_open_admits_exactly_n_trial_calls_across_threads(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=7)
    trip(b)
    clock.advance(1)
    admitted: list[object] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            with contextlib.suppress(CircuitOpen):
                admitted.append(b.acquire())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 7


async def test_half_open_admits_exactly_n_trial_calls_across_tasks(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=5)
    trip(b)
    clock.advance(1)
    start = asyncio.Event()

    async def call() -> bool:
        await start.wait()
        try:
            token = b.acquire()
        except CircuitOpen:
            return False
        await asyncio.sleep(0)  # trials overlap
        b.record_success(token)
        return True

    tasks = [asyncio.create_task(call()) for _ in range(40)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == 5
    # Every task tried to acquire before any trial finished, so only 5 got in.
    assert b.state == "closed"


def test_stuck_half_open_reopens_after_the_bounded_wait(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=2, half_open_max_wait=5)
    trip(b)
    clock.advance(1)
    b.acquire(), b.acquire()  # trials that never finish
    clock.advance(4)
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert b.state == "half_open"
    clock.advance(1)
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert b.state == "open"


def test_poll_reopens_a_stuck_half_open_without_traffic(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=2, half_open_max_wait=5)
    trip(b)
    clock.advance(1)
    b.poll()
    assert b.state == "half_open"
    b.acquire()
    clock.advance(5)
    b.poll()
    assert b.state == "open"


def test_results_of_calls_started_before_a_transition_do_not_count(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=2, open_for=1, half_open_calls=1)
    slow_call = b.acquire()  # starts while closed
    trip(b)
    clock.advance(1)
    trial = b.acquire()
    b.record_success(slow_call)  # a stale success must not close the breaker
    assert b.state == "half_open"
    b.record_success(trial)
    assert b.state == "closed"
    old = b.acquire()
    fail(b)
    b.record_failure(slow_call)  # from two generations ago
    assert b.state == "closed"
    b.record_failure(old)
    assert b.state == "open"


def test_racing_failures_cause_exactly_one_transition_heard_once(make: Make) -> None:
    b = make(failure_threshold=5, error_rate=None)
    heard: list[Transition] = []
    b.add_listener(heard.append)
    tokens = [b.acquire() for _ in range(400)]
    barrier = threading.Barrier(8)

    def worker(chunk: list[object]) -> None:
        barrier.wait()
        for token in chunk:
            b.record_failure(token)  # type: ignore[arg-type]

    threads = [threading.Thread(target=worker, args=(tokens[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events.flush()
    assert [(t.from_state, t.to_state) for t in heard] == [("closed", "open")]
    assert b.snapshot()["generation"] == 1


def test_a_listener_that_raises_is_logged_and_others_still_hear(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    b = make(failure_threshold=1)
    heard: list[Transition] = []

    def broken(t: Transition) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    b.add_listener(heard.append)
    with caplog.at_level(logging.WARNING, logger="resilience_django.breakers"):
        fail(b)  # does not raise
        assert events.flush()
    assert len(heard) == 1
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)
    transition_logs = [r for r in caplog.records if getattr(r, "to_state", None) == "open"]
    assert transition_logs and transition_logs[0].breaker == "dep"  # type: ignore[attr-defined]


def test_a_listener_never_runs_on_the_callers_thread(make: Make) -> None:
    b = make(failure_threshold=1)
    threads: list[threading.Thread] = []
    b.add_listener(lambda t: threads.append(threading.current_thread()))
    fail(b)
    assert events.flush()
    assert threads and threads[0] is not threading.current_thread()


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), DeadlineExceeded("budget spent")])
def test_caller_fault_is_ignored_unless_the_call_was_slow(make: Make, exc: BaseException) -> None:
    b = make(failure_threshold=1, slow_call=2.0)
    b.record_failure(b.acquire(), 0.5, exc)
    assert b.state == "closed"
    b.record_failure(b.acquire(), 2.5, exc)
    assert b.state == "open"


def test_ignored_exceptions_count_as_success_and_unrecorded_ones_too(make: Make) -> None:
    b = make(failure_threshold=2, ignore=(KeyError,), record=(OSError,))
    fail(b)
    b.record_failure(b.acquire(), exc=KeyError("x"))
    b.record_failure(b.acquire(), exc=ValueError("not recorded"))
    fail(b)
    assert b.state == "closed"
    b.record_failure(b.acquire(), exc=ConnectionError("down"))
    assert b.state == "open"


def test_a_released_trial_frees_its_half_open_slot(make: Make, clock: ManualClock) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=1)
    trip(b)
    clock.advance(1)
    token = b.acquire()
    with pytest.raises(CircuitOpen):
        b.acquire()
    b.record_failure(token, exc=asyncio.CancelledError())
    b.record_success(b.acquire())
    assert b.state == "closed"


def test_metrics_only_measures_but_never_trips(make: Make) -> None:
    b = make(failure_threshold=2, mode="metrics_only")
    fail(b, 5)
    assert b.state == "metrics_only"
    assert b.shadow_trips == 2
    b.acquire()


def test_disabled_always_admits_and_still_measures(make: Make) -> None:
    b = make(failure_threshold=1, mode="disabled")
    fail(b, 3)
    assert b.state == "disabled" and b.snapshot()["failures"] == 3


def test_operator_commands_force_open_disable_and_reset(make: Make) -> None:
    b = make(failure_threshold=3)
    b.force_open()
    with pytest.raises(CircuitOpen):
        b.acquire()
    b.disable()
    fail(b, 5)
    assert b.state == "disabled"
    b.reset()
    assert b.state == "closed" and b.snapshot()["calls"] == 0
    fail(b, 2)
    b.force_close()
    fail(b, 2)
    assert b.state == "closed"  # the reset cleared the run of failures


def test_open_until_from_another_process_opens_and_extends(make: Make, clock: ManualClock) -> None:
    b = make()
    b.open_until(clock() + 5)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_after == 5
    b.open_until(clock() + 9)
    assert b.snapshot()["retry_after"] == 9
    b.force_open()
    b.open_until(clock() + 20)
    assert b.state == "forced_open"


def test_call_counts_reach_metrics_as_deltas(make: Make) -> None:
    b = make(failure_threshold=None, error_rate=None, slow_call=10)
    succeed(b, 3)
    fail(b)
    assert dict(b._counter_deltas()) == {"success": 3, "failure": 1}
    succeed(b)
    assert dict(b._counter_deltas()) == {"success": 1}


def test_configure_applies_a_new_policy_in_place(make: Make) -> None:
    b = make(failure_threshold=5)
    b.configure(BreakerPolicy(failure_threshold=1, mode="disabled"))
    assert b.state == "disabled"
    b.configure(BreakerPolicy(failure_threshold=1))
    fail(b)
    assert b.state == "open"


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 6))
def test_opens_exactly_when_a_run_of_threshold_failures_occurs(
    outcomes: list[bool], threshold: int
) -> None:
    b = Breaker(
        "p", BreakerPolicy(failure_threshold=threshold, error_rate=None), clock=ManualClock()
    )
    run = 0
    expect_open = False
    for ok in outcomes:
        if b.state == "open":
            break
        token = b.acquire()
        if ok:
            b.record_success(token)
            run = 0
        else:
            b.record_failure(token)
            run += 1
        expect_open = expect_open or run >= threshold
    assert (b.state == "open") == expect_open


def test_a_bound_method_listener_can_be_removed(make: Make) -> None:
    class Probe:
        def __init__(self) -> None:
            self.heard = 0

        def hear(self, t: Transition) -> None:
            self.heard += 1

    probe = Probe()
    b = make(failure_threshold=1)
    b.add_listener(probe.hear)
    b.remove_listener(probe.hear)
    fail(b)
    assert events.flush()
    assert probe.heard == 0


@given(
    st.integers(1, 8),
    st.sampled_from([0.5, 0.75, 0.9, 1.0]),
    st.lists(st.tuples(st.sampled_from(["acquire", "ok", "fail", "release"]), st.integers(0, 7))),
)
def test_half_open_never_admits_more_than_n_and_decides_by_the_ratio(
    n: int, ratio: float, ops: list[tuple[str, int]]
) -> None:
    clock = ManualClock()
    policy = BreakerPolicy(failure_threshold=1, open_for=1, half_open_calls=n, close_ratio=ratio)
    b = Breaker("p", policy, clock=clock)
    b.record_failure(b.acquire())
    clock.advance(1)
    b.poll()
    assert b.state == "half_open"
    gen = b.snapshot()["generation"]
    outstanding: list[object] = []
    ok = failed = 0
    for op, pick in ops:
        if b.snapshot()["generation"] != gen:
            break
        if op == "acquire":
            try:
                outstanding.append(b.acquire())
            except CircuitOpen:
                assert len(outstanding) + ok + failed == n  # only a full half-open rejects
        elif outstanding:
            token = outstanding.pop(pick % len(outstanding))
            if op == "ok":
                b.record_success(token)  # type: ignore[arg-type]
                ok += 1
            elif op == "fail":
                b.record_failure(token)  # type: ignore[arg-type]
                failed += 1
            else:
                b.release(token)  # type: ignore[arg-type]
        assert len(outstanding) + ok + failed <= n
    need = policy.trials_to_close
    if b.state == "closed":
        assert ok >= need
    elif b.state == "open":
        assert failed > n - need
    else:
        assert ok < need and failed <= n - need


def test_racing_callers_after_open_for_cause_one_half_open_transition(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=1, half_open_calls=3)
    trip(b)
    clock.advance(1)
    heard: list[Transition] = []
    b.add_listener(heard.append)
    barrier = threading.Barrier(12)

    def worker() -> None:
        barrier.wait()
        with contextlib.suppress(CircuitOpen):
            b.acquire()

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events.flush()
    assert [(t.from_state, t.to_state) for t in heard] == [("open", "half_open")]


class ExplodingLock:
    def __enter__(self) -> None:
        raise AssertionError("the closed-state hot path took the lock")

    def __exit__(self, *exc: object) -> None:
        pass


def test_closed_state_successes_take_no_lock(make: Make) -> None:
    b = make()
    b.record_success(b.acquire())  # settle into the current second
    b._lock = ExplodingLock()  # type: ignore[assignment]
    for _ in range(100):
        b.record_success(b.acquire())
    assert b.snapshot()["calls"] == 101


def test_a_new_mode_takes_over_an_open_breaker_but_not_a_forced_one(make: Make) -> None:
    b = make(failure_threshold=1)
    trip(b)
    b.configure(BreakerPolicy(failure_threshold=1, mode="metrics_only"))
    assert b.state == "metrics_only"
    b.force_open()
    b.configure(BreakerPolicy(failure_threshold=1))
    assert b.state == "forced_open"


@pytest.mark.parametrize(("rate", "calls", "at_rate"), [(0.57, 100, 57), (0.29, 100, 29)])
def test_exactly_at_the_rate_stays_closed_despite_float_rounding(
    make: Make, rate: float, calls: int, at_rate: int
) -> None:
    assert rate * calls < at_rate  # the float product rounds below the exact count
    b = make(failure_threshold=None, error_rate=rate, min_calls=calls, window=60)
    succeed(b, calls - at_rate)
    fail(b, at_rate)
    assert b.state == "closed"
    fail(b)
    assert b.state == "open"


def test_a_rate_of_one_trips_when_every_call_fails(make: Make) -> None:
    b = make(failure_threshold=None, error_rate=1.0, min_calls=5, window=60)
    fail(b, 4)
    assert b.state == "closed"  # fewer than min_calls
    fail(b)
    assert b.state == "open"
    mixed = make(failure_threshold=None, error_rate=1.0, min_calls=5, window=60)
    succeed(mixed)
    fail(mixed, 20)
    assert mixed.state == "closed"  # one success in the window: not all failed


def test_the_failure_that_trips_returns_the_transition_and_no_other_call_does(
    make: Make,
) -> None:
    b = make(failure_threshold=2, error_rate=None)
    token = b.acquire()
    assert b.record_failure(token) is None
    tripped = b.record_failure(token)
    assert tripped is not None and (tripped.from_state, tripped.to_state) == ("closed", "open")
    assert b.record_failure(token) is None  # an earlier generation's call: no second trip
    closed = b.reset("probes answered")
    assert closed is not None and closed.to_state == "closed" and b.reset() is None


def test_try_acquire_hands_out_the_token_only_while_closed_and_counts_no_rejection(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, error_rate=None, open_for=1.0)
    assert b.try_acquire() is b.acquire()
    trip(b)
    clock.advance(5.0)
    assert b.try_acquire() is None
    assert b.state == "open"  # no move to half-open, unlike acquire()
    assert b.snapshot()["rejected"] == 0


def test_with_stall_counts_once_calls_under_way_at_a_counted_failure_count_once(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=3, error_rate=None, stall_counts_once=True)
    token = b.acquire()
    # Five calls that all started at t=1000 fail together at t=1000.2: one stall.
    clock.advance(0.2)
    for _ in range(5):
        b.record_failure(token, 0.2)
    assert b.state == "closed" and token.consecutive == 1
    # Calls that started after it each count; the third in a row trips.
    for _ in range(2):
        clock.advance(0.1)
        b.record_failure(token, 0.05)
    assert b.state == "open"


class OthersFirst:
    """The breaker's lock, but another thread runs ``first`` (and takes the lock) just
    before the first ``with`` here gets it: a deterministic interleaving."""

    def __init__(self, lock: threading.Lock, first: Callable[[], object]) -> None:
        self.lock, self.first, self.done = lock, first, False

    def __enter__(self) -> None:
        if not self.done:
            self.done = True
            other = threading.Thread(target=self.first)
            other.start()
            other.join()
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


@pytest.mark.parametrize("move", ["acquire", "poll"])
def test_a_shared_marker_that_extends_the_open_time_meanwhile_keeps_the_breaker_open(
    make: Make, clock: ManualClock, move: str
) -> None:
    b = make(failure_threshold=1, open_for=10, shared=True)
    trip(b)
    clock.advance(10)  # open_for has elapsed ...
    # ... but between that check and the lock, another process's marker says 30 s more.
    b._lock = OthersFirst(b._lock, lambda: b.open_until(clock() + 30))  # type: ignore[assignment]
    if move == "acquire":
        with pytest.raises(CircuitOpen) as info:
            b.acquire()
        assert info.value.retry_after == pytest.approx(30)
    else:
        b.poll()
    assert b.state == "open"


def test_a_shorter_open_for_applies_to_a_breaker_already_open(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=86400, half_open_calls=1)  # a day, by mistake
    trip(b)
    clock.advance(5)
    b.configure(BreakerPolicy(failure_threshold=1, open_for=10, half_open_calls=1))  # put right
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_after == pytest.approx(5)
    clock.advance(5)
    b.record_success(b.acquire())  # the trial, on the corrected schedule
    assert b.state == "closed"
    trip(b)
    longer = BreakerPolicy(failure_threshold=1, open_for=60, half_open_calls=1)
    b.configure(longer)  # a longer open_for holds from the next trip
    clock.advance(10)
    b.acquire()
    assert b.state == "half_open"


def test_a_policy_change_that_keeps_the_open_time_keeps_a_shared_markers_extension(
    make: Make, clock: ManualClock
) -> None:
    b = make(failure_threshold=1, open_for=10, shared=True)
    trip(b)
    b.open_until(clock() + 60)  # another process opened it for longer
    b.configure(BreakerPolicy(failure_threshold=2, open_for=10, shared=True))
    clock.advance(30)
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert b.state == "open"
