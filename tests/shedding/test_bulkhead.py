from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from resilience_django.shedding.adaptive import AdaptiveLimit
from resilience_django.shedding.bulkhead import Bulkhead, Permit, Shed


class Peak:
    """Counts concurrent holders and remembers the highest count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def _admitted(result: Permit | Shed) -> Permit:
    assert isinstance(result, Permit), result
    return result


def _hammer_threads(bulkhead: Bulkhead, peak: Peak, threads: int, rounds: int) -> list[str]:
    errors: list[str] = []

    def worker() -> None:
        for _ in range(rounds):
            permit = bulkhead.acquire_sync(None)
            if not permit.admitted:
                errors.append("shed")
                continue
            peak.enter()
            time.sleep(0.0002)
            peak.leave()
            permit.release()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def test_threads_never_exceed_the_limit_and_all_get_in_when_the_queue_is_deep() -> None:
    bulkhead = Bulkhead("t", 3, queue=100, report_metrics=False)
    peak = Peak()
    assert _hammer_threads(bulkhead, peak, threads=12, rounds=40) == []
    assert peak.peak == 3
    assert bulkhead.inflight == 0 and bulkhead.waiting == 0


async def test_tasks_never_exceed_the_limit_and_all_get_in_when_the_queue_is_deep() -> None:
    bulkhead = Bulkhead("a", 3, queue=100, report_metrics=False)
    peak = Peak()

    async def worker() -> None:
        for _ in range(20):
            permit = _admitted(await bulkhead.acquire_async(None))
            peak.enter()
            await asyncio.sleep(0)
            peak.leave()
            permit.release()

    await asyncio.gather(*(worker() for _ in range(30)))
    assert peak.peak == 3
    assert bulkhead.inflight == 0 and bulkhead.waiting == 0


async def test_threads_and_tasks_sharing_one_bulkhead_never_exceed_the_limit() -> None:
    bulkhead = Bulkhead("mixed", 4, queue=100, report_metrics=False)
    peak = Peak()
    shed: list[str] = []

    async def task_worker() -> None:
        for _ in range(60):
            result = await bulkhead.acquire_async(5.0)
            if not result.admitted:
                shed.append("task")
                continue
            peak.enter()
            await asyncio.sleep(0.0002)
            peak.leave()
            result.release()

    thread_run = asyncio.to_thread(_hammer_threads, bulkhead, peak, 6, 60)
    results = await asyncio.gather(thread_run, *(task_worker() for _ in range(10)))
    assert results[0] == [] and shed == []
    assert peak.peak == 4
    assert bulkhead.inflight == 0 and bulkhead.waiting == 0


async def test_full_queue_sheds_at_once_with_a_retry_after_hint() -> None:
    bulkhead = Bulkhead("q", 1, queue=2, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    waiters = [asyncio.create_task(bulkhead.acquire_async(10.0)) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert bulkhead.waiting == 2
    started = time.monotonic()
    third = await bulkhead.acquire_async(10.0)
    assert isinstance(third, Shed) and third.reason == "queue_full"
    assert third.retry_after > 0
    assert time.monotonic() - started < 0.2  # at once, not after the 10 s wait
    held.release()
    for w in waiters:
        _admitted(await w).release()


def test_sync_wait_is_bounded_by_the_timeout_and_then_shed() -> None:
    bulkhead = Bulkhead("w", 1, queue=5, report_metrics=False)
    held = _admitted(bulkhead.acquire_sync(0))
    started = time.monotonic()
    result = bulkhead.acquire_sync(0.05)
    elapsed = time.monotonic() - started
    assert isinstance(result, Shed) and result.reason == "timeout"
    assert 0.04 <= elapsed < 0.5
    assert bulkhead.waiting == 0
    held.release()
    assert bulkhead.acquire_sync(0).admitted


async def test_async_wait_is_bounded_by_the_timeout_and_then_shed() -> None:
    bulkhead = Bulkhead("w", 1, queue=5, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    started = time.monotonic()
    result = await bulkhead.acquire_async(0.05)
    assert isinstance(result, Shed) and result.reason == "timeout"
    assert 0.04 <= time.monotonic() - started < 0.5
    assert bulkhead.waiting == 0
    held.release()
    assert (await bulkhead.acquire_async(0)).admitted


def test_zero_timeout_never_queues() -> None:
    bulkhead = Bulkhead("z", 1, queue=5, report_metrics=False)
    held = _admitted(bulkhead.acquire_sync(0))
    result = bulkhead.acquire_sync(0)
    assert isinstance(result, Shed) and result.reason == "queue_full"
    assert bulkhead.waiting == 0
    held.release()


async def test_async_waiters_are_admitted_in_fifo_order() -> None:
    bulkhead = Bulkhead("fifo", 1, queue=10, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    order: list[int] = []

    async def waiter(i: int) -> None:
        permit = _admitted(await bulkhead.acquire_async(5.0))
        order.append(i)
        await asyncio.sleep(0)
        permit.release()

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(waiter(i)))
        while bulkhead.waiting < i + 1:
            await asyncio.sleep(0)
    held.release()
    await asyncio.gather(*tasks)
    assert order == list(range(6))


def test_thread_waiters_are_admitted_in_fifo_order() -> None:
    bulkhead = Bulkhead("fifo", 1, queue=10, report_metrics=False)
    held = _admitted(bulkhead.acquire_sync(0))
    order: list[int] = []

    def waiter(i: int) -> None:
        permit = _admitted(bulkhead.acquire_sync(5.0))
        order.append(i)
        permit.release()

    threads = []
    for i in range(6):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 2
        while bulkhead.waiting < i + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
    held.release()
    for t in threads:
        t.join()
    assert order == list(range(6))


def test_non_critical_requests_leave_the_critical_share_free() -> None:
    bulkhead = Bulkhead("c", 10, critical_share=0.2, report_metrics=False)
    ordinary = [bulkhead.acquire_sync(0) for _ in range(9)]
    assert [p.admitted for p in ordinary] == [True] * 8 + [False]
    critical = [bulkhead.acquire_sync(0, critical=True) for _ in range(3)]
    assert [p.admitted for p in critical] == [True, True, False]
    for p in ordinary + critical:
        p.release()
    assert bulkhead.inflight == 0


def test_critical_requests_use_free_ordinary_slots_first() -> None:
    bulkhead = Bulkhead("c", 10, critical_share=0.2, report_metrics=False)
    critical = [_admitted(bulkhead.acquire_sync(0, critical=True)) for _ in range(3)]
    ordinary = [bulkhead.acquire_sync(0) for _ in range(6)]
    # 3 critical took ordinary slots, so only 5 ordinary ones remain.
    assert [p.admitted for p in ordinary] == [True] * 5 + [False]
    for p in critical + ordinary:
        p.release()


async def test_a_freed_slot_goes_to_a_waiting_critical_request_first() -> None:
    bulkhead = Bulkhead("c", 5, queue=10, critical_share=0.2, report_metrics=False)
    held = [_admitted(await bulkhead.acquire_async(0, critical=True)) for _ in range(5)]
    order: list[str] = []

    async def waiter(kind: str) -> None:
        permit = _admitted(await bulkhead.acquire_async(5.0, critical=kind == "critical"))
        order.append(kind)
        permit.release()

    ordinary = asyncio.create_task(waiter("ordinary"))
    await asyncio.sleep(0.01)
    critical = asyncio.create_task(waiter("critical"))
    await asyncio.sleep(0.01)
    held.pop(0).release()  # an ordinary slot: either waiter could use it
    await asyncio.gather(ordinary, critical)
    assert order == ["critical", "ordinary"]
    for p in held:
        p.release()


async def test_cancelled_waiter_gives_its_place_back() -> None:
    bulkhead = Bulkhead("x", 1, queue=1, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    task = asyncio.create_task(bulkhead.acquire_async(10.0))
    await asyncio.sleep(0.01)
    assert bulkhead.waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bulkhead.waiting == 0
    held.release()
    assert bulkhead.inflight == 0
    again = _admitted(await bulkhead.acquire_async(0))
    again.release()


async def test_waiter_cancelled_after_being_granted_returns_the_slot() -> None:
    bulkhead = Bulkhead("x", 1, queue=1, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    task = asyncio.create_task(bulkhead.acquire_async(10.0))
    await asyncio.sleep(0.01)
    held.release()  # grants the slot to the waiter, whose task has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bulkhead.inflight == 0 and bulkhead.waiting == 0
    _admitted(await bulkhead.acquire_async(0)).release()


def test_release_twice_returns_the_slot_once() -> None:
    bulkhead = Bulkhead("r", 1, report_metrics=False)
    permit = _admitted(bulkhead.acquire_sync(0))
    permit.release()
    permit.release()
    first = bulkhead.acquire_sync(0)
    assert first.admitted and not bulkhead.acquire_sync(0).admitted
    first.release()


def test_shrinking_waits_for_slots_in_use_and_growing_admits_waiters() -> None:
    bulkhead = Bulkhead("s", 4, queue=4, report_metrics=False)
    permits = [_admitted(bulkhead.acquire_sync(0)) for _ in range(4)]
    bulkhead.resize(2)
    assert bulkhead.limit == 2
    permits.pop().release()
    permits.pop().release()
    assert not bulkhead.acquire_sync(0).admitted  # still 2 in use
    permits.pop().release()
    third = _admitted(bulkhead.acquire_sync(0))
    bulkhead.resize(3)
    fourth = _admitted(bulkhead.acquire_sync(0))
    assert not bulkhead.acquire_sync(0).admitted
    for p in (*permits, third, fourth):
        p.release()
    assert bulkhead.inflight == 0


def test_inflight_gauge_follows_admit_and_release_and_shed_is_counted() -> None:
    bulkhead = Bulkhead("gauge-test", 1)

    def gauge() -> float:
        return (
            REGISTRY.get_sample_value("resilience_inflight_requests", {"route": "gauge-test"})
            or 0.0
        )

    def shed_count() -> float:
        return (
            REGISTRY.get_sample_value(
                "resilience_requests_rejected_total", {"rule": "gauge-test", "reason": "shed"}
            )
            or 0.0
        )

    before, shed_before = gauge(), shed_count()
    permit = _admitted(bulkhead.acquire_sync(0))
    assert gauge() == before + 1
    assert not bulkhead.acquire_sync(0).admitted
    assert shed_count() == shed_before + 1
    permit.release()
    assert gauge() == before


def test_adaptive_bulkhead_follows_its_controller() -> None:
    now = [0.0]
    adaptive = AdaptiveLimit(
        min_limit=2, initial_limit=6, max_limit=50, probe_samples=3, clock=lambda: now[0]
    )
    bulkhead = Bulkhead("ad", adaptive, report_metrics=False, clock=lambda: now[0])
    assert bulkhead.limit == 2  # probing at the floor
    for _ in range(3):
        permit = _admitted(bulkhead.acquire_sync(0))
        now[0] += 0.01
        permit.release()
    assert bulkhead.limit == 6  # the probe ended; the initial limit applies


def test_concurrency_limit_gauge_shows_the_limit_as_it_moves() -> None:
    def gauge(route: str) -> float | None:
        return REGISTRY.get_sample_value("resilience_concurrency_limit", {"route": route})

    fixed = Bulkhead("limit-gauge-fixed", 4)
    assert gauge("limit-gauge-fixed") == 4
    fixed.resize(7)
    assert gauge("limit-gauge-fixed") == 7
    now = [0.0]
    adaptive = AdaptiveLimit(
        min_limit=2, initial_limit=6, max_limit=50, probe_samples=3, clock=lambda: now[0]
    )
    moving = Bulkhead("limit-gauge-adaptive", adaptive, clock=lambda: now[0])
    assert gauge("limit-gauge-adaptive") == 2  # probing at the floor
    for _ in range(3):
        permit = _admitted(moving.acquire_sync(0))
        now[0] += 0.01
        permit.release()
    assert gauge("limit-gauge-adaptive") == 6  # where the controller moved it
    Bulkhead("limit-gauge-quiet", 3, report_metrics=False)
    assert gauge("limit-gauge-quiet") is None


def test_adaptive_bulkhead_kept_full_grows_off_a_small_floor() -> None:
    now = [0.0]
    adaptive = AdaptiveLimit(
        min_limit=2, initial_limit=2, max_limit=50, probe_samples=2, clock=lambda: now[0]
    )
    bulkhead = Bulkhead("ad", adaptive, report_metrics=False, clock=lambda: now[0])
    held: list[Permit] = []
    for _ in range(300):
        # Every slot taken, each held 10 ms: flat latency, demand above the limit.
        while (result := bulkhead.acquire_sync(0)).admitted:
            assert isinstance(result, Permit)
            held.append(result)
        now[0] += 0.010
        while held:
            held.pop().release()
    # Counted after its slot went back, the last request of a full bulkhead
    # of 2 saw 1 in flight: "app-limited", and the limit never grew.
    assert bulkhead.limit > 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60))
def test_no_sequence_of_acquires_and_releases_breaks_the_limits(
    steps: list[tuple[bool, bool]],
) -> None:
    bulkhead = Bulkhead("h", 5, critical_share=0.4, report_metrics=False)
    held: list[tuple[bool, Permit]] = []
    for acquire, critical in steps:
        if acquire or not held:
            result = bulkhead.acquire_sync(0, critical=critical)
            if result.admitted:
                assert isinstance(result, Permit)
                held.append((critical, result))
            else:
                # Shed only when every slot this request may use is taken.
                assert len(held) == 5 if critical else len(held) >= 3
        else:
            held.pop(0)[1].release()
        ordinary_in_use = sum(1 for c, _ in held if not c)
        assert len(held) <= 5 and ordinary_in_use <= 3
        assert bulkhead.inflight == len(held)


async def test_no_slot_or_queue_place_leaks_when_timeouts_race_with_grants() -> None:
    bulkhead = Bulkhead("race", 3, queue=6, critical_share=0.34, report_metrics=False)
    peak = Peak()
    outcomes: list[bool] = []

    def thread_worker(seed: int) -> None:
        for i in range(80):
            result = bulkhead.acquire_sync(0.0005 * (1 + (seed + i) % 4), critical=i % 3 == 0)
            outcomes.append(result.admitted)
            if result.admitted:
                peak.enter()
                time.sleep(0.0003)
                peak.leave()
                result.release()

    async def task_worker(seed: int) -> None:
        for i in range(80):
            result = await bulkhead.acquire_async(
                0.0005 * (1 + (seed + i) % 4), critical=i % 4 == 0
            )
            outcomes.append(result.admitted)
            if result.admitted:
                peak.enter()
                await asyncio.sleep(0.0003)
                peak.leave()
                result.release()

    threads = [asyncio.to_thread(thread_worker, s) for s in range(4)]
    await asyncio.gather(*threads, *(task_worker(s) for s in range(8)))
    assert peak.peak <= 3
    assert True in outcomes and False in outcomes  # both admissions and sheds happened
    assert bulkhead.inflight == 0 and bulkhead.waiting == 0
    permits = [await bulkhead.acquire_async(0, critical=True) for _ in range(4)]
    assert [p.admitted for p in permits] == [True, True, True, False]


class LateReleaseBulkhead(Bulkhead):
    """Frees a slot right after a waiter enqueues, as a releaser that looked too early would."""

    __slots__ = ()

    def _enqueue(self, waiter: Any) -> Any:
        result = super()._enqueue(waiter)
        self._general.tokens.append(True)  # the releaser saw no waiter and freed the slot
        return result


def test_a_slot_freed_while_a_thread_enqueues_is_not_lost() -> None:
    bulkhead = LateReleaseBulkhead("late", 1, queue=1, report_metrics=False)
    held = _admitted(bulkhead.acquire_sync(0))
    started = time.monotonic()
    second = bulkhead.acquire_sync(2.0)
    assert second.admitted and time.monotonic() - started < 0.5
    assert bulkhead.waiting == 0
    held._slot.clear()  # its slot was "freed" by the subclass already
    second.release()


async def test_a_slot_freed_while_a_task_enqueues_is_not_lost() -> None:
    bulkhead = LateReleaseBulkhead("late", 1, queue=1, report_metrics=False)
    held = _admitted(await bulkhead.acquire_async(0))
    second = await asyncio.wait_for(bulkhead.acquire_async(2.0), 0.5)
    assert second.admitted and bulkhead.waiting == 0
    held._slot.clear()
    second.release()


@contextmanager
def _allocated() -> Iterator[list[int]]:
    """Bytes allocated (and still held) inside the block, in ``result[0]``."""
    result = [0]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield result
        result[0] = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_huge_limit_and_queue_cost_memory_for_the_requests_only() -> None:
    # The slot pool used to hold one element per slot: at 2**63 - 1 a MemoryError
    # on every request; at a million, 8 MB per bulkhead before any request came.
    with _allocated() as used:
        bulkhead = Bulkhead("huge", 1_000_000, queue=1_000_000, report_metrics=False)
        permits = [_admitted(bulkhead.acquire_sync(0)) for _ in range(10)]
    assert used[0] < 100_000
    assert bulkhead.inflight == 10 and bulkhead.waiting == 0 and bulkhead.limit == 1_000_000
    for permit in permits:
        permit.release()
    assert bulkhead.inflight == 0


def test_growing_to_a_huge_limit_stores_no_slots_and_shrinking_back_holds() -> None:
    bulkhead = Bulkhead("grow", 2, queue=0, report_metrics=False)
    held = [_admitted(bulkhead.acquire_sync(0)) for _ in range(2)]
    with _allocated() as used:
        bulkhead.resize(1_000_000)
    assert used[0] < 100_000
    held.append(_admitted(bulkhead.acquire_sync(0)))
    assert bulkhead.inflight == 3
    bulkhead.resize(2)  # three in use: one is destroyed when released
    assert not bulkhead.acquire_sync(0).admitted
    for permit in held:
        permit.release()
    assert bulkhead.inflight == 0
    again = [bulkhead.acquire_sync(0) for _ in range(3)]
    assert [p.admitted for p in again] == [True, True, False]
    for permit in again:
        permit.release()


def test_growing_hands_the_new_slots_to_waiters_first() -> None:
    bulkhead = Bulkhead("waiters", 1, queue=2, report_metrics=False)
    held = _admitted(bulkhead.acquire_sync(0))
    results: list[Permit | Shed] = []
    threads = [
        threading.Thread(target=lambda: results.append(bulkhead.acquire_sync(10.0)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while bulkhead.waiting < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert bulkhead.waiting == 2
    bulkhead.resize(3)
    for thread in threads:
        thread.join(10)
    assert [r.admitted for r in results] == [True, True]
    assert bulkhead.waiting == 0 and bulkhead.inflight == 3
    for result in (*results, held):
        result.release()
    assert bulkhead.inflight == 0
