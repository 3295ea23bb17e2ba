from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import override_settings

from resilience_django.breakers.api import breaker
from resilience_django.breakers.registry import get_breaker, registry
from resilience_django.breakers.state import CircuitOpen
from resilience_django.clock import ManualClock

SETTINGS = {
    "BREAKERS": {
        "dep": {"failure_threshold": 2, "open_for": "10s", "half_open_calls": 1},
        "slow": {"failure_threshold": 1, "slow_call": "1s"},
    }
}


@pytest.fixture(autouse=True)
def configured() -> Iterator[ManualClock]:
    registry.clear()
    clock = ManualClock(50.0)
    with override_settings(RESILIENCE=SETTINGS):
        for name in ("dep", "slow"):
            get_breaker(name)._clock = clock
        yield clock
    registry.clear()


@pytest.fixture
def clock(configured: ManualClock) -> ManualClock:
    return configured


def boom() -> None:
    raise ConnectionError("down")


def test_decorator_trips_then_raises_circuit_open_with_retry_after(clock: ManualClock) -> None:
    calls = []

    @breaker("dep")
    def call(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise ConnectionError("down")
        return x * 2

    assert call(2) == 4
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call(-1)
    with pytest.raises(CircuitOpen) as info:
        call(3)
    assert info.value.retry_after == 10
    assert calls == [2, -1, -1]  # the open breaker did not run the function
    clock.advance(10)
    assert call(5) == 10  # the half-open trial succeeds and closes it
    assert get_breaker("dep").state == "closed"


def test_fallback_is_called_with_the_same_arguments_while_open() -> None:
    @breaker("dep", fallback=lambda x: f"cached {x}")
    def call(x: int) -> str:
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            call(1)
    assert call(7) == "cached 7"


async def test_async_decorator_trips_and_uses_an_async_fallback(clock: ManualClock) -> None:
    async def cached(x: int) -> str:
        return f"cached {x}"

    @breaker("dep", fallback=cached)
    async def call(x: int) -> str:
        await asyncio.sleep(0)
        if x < 0:
            raise ConnectionError("down")
        return "fresh"

    assert await call(1) == "fresh"
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await call(-1)
    assert await call(1) == "cached 1"
    clock.advance(10)
    assert await call(1) == "fresh"


async def test_cancelled_async_call_is_not_the_dependencys_fault() -> None:
    started = asyncio.Event()

    @breaker("dep")
    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    for _ in range(3):
        task = asyncio.create_task(hang())
        await started.wait()
        started.clear()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert get_breaker("dep").state == "closed"


def test_failure_result_predicate_counts_5xx_as_failures() -> None:
    @breaker("dep", failure_result=lambda r: r.status_code >= 500)
    def fetch(status: int) -> SimpleNamespace:
        return SimpleNamespace(status_code=status)

    fetch(200)
    fetch(503)
    assert get_breaker("dep").state == "closed"
    assert fetch(502).status_code == 502  # the result is still returned
    assert get_breaker("dep").state == "open"


def test_slow_calls_are_timed_with_the_breakers_clock(clock: ManualClock) -> None:
    @breaker("slow")
    def work() -> None:
        clock.advance(1.5)

    work()
    assert get_breaker("slow").state == "open"


def test_sync_context_manager_records_success_and_failure(clock: ManualClock) -> None:
    guard = breaker("dep")
    with guard:
        pass
    for _ in range(2):
        with pytest.raises(ConnectionError), guard:
            boom()
    with pytest.raises(CircuitOpen), breaker("dep"):
        pytest.fail("the block must not run while open")


async def test_async_context_manager_nests_and_overlaps_safely(clock: ManualClock) -> None:
    guard = breaker("dep")

    async def one(fail: bool) -> None:
        async with guard:
            await asyncio.sleep(0)
            if fail:
                raise ConnectionError("down")

    results = await asyncio.gather(one(False), one(True), one(False), return_exceptions=True)
    assert [type(r) for r in results] == [type(None), ConnectionError, type(None)]
    assert get_breaker("dep").state == "closed"  # failure runs were broken by successes
    await asyncio.gather(one(True), one(True), return_exceptions=True)
    assert get_breaker("dep").state == "open"


def test_decorated_function_keeps_its_name_and_docstring() -> None:
    @breaker("dep")
    def price() -> None:
        """Price a thing."""

    assert price.__name__ == "price" and price.__doc__ == "Price a thing."


def test_no_lock_is_held_while_the_protected_call_runs() -> None:
    import threading

    inside = threading.Event()
    release = threading.Event()

    @breaker("dep")
    def call(block: bool) -> str:
        if block:
            inside.set()
            assert release.wait(10)
        return "done"

    blocked = threading.Thread(target=call, args=(True,))
    blocked.start()
    assert inside.wait(10)
    try:
        assert call(False) == "done"  # not serialised behind the blocked call
    finally:
        release.set()
        blocked.join()


def test_a_failure_result_predicate_that_raises_gives_the_trial_slot_back(
    clock: ManualClock,
) -> None:
    @breaker("dep", failure_result=lambda r: r.status_code >= 500)
    def fetch(result: object) -> object:
        return result

    for _ in range(2):
        fetch(SimpleNamespace(status_code=503))
    assert get_breaker("dep").state == "open"
    clock.advance(10)
    with pytest.raises(AttributeError):
        fetch(None)  # the one trial: the predicate cannot judge its result
    # No verdict, and the slot is free again: the next call is the trial, and closes it.
    assert fetch(SimpleNamespace(status_code=200)).status_code == 200
    assert get_breaker("dep").state == "closed"


async def test_an_async_trial_whose_result_the_predicate_cannot_judge_frees_its_slot(
    clock: ManualClock,
) -> None:
    @breaker("dep", failure_result=lambda r: r.status_code >= 500)
    async def fetch(result: object) -> object:
        await asyncio.sleep(0)
        return result

    for _ in range(2):
        await fetch(SimpleNamespace(status_code=503))
    clock.advance(10)
    with pytest.raises(AttributeError):
        await fetch(None)
    assert (await fetch(SimpleNamespace(status_code=200))).status_code == 200
    assert get_breaker("dep").state == "closed"


async def test_a_task_group_that_ran_out_of_the_callers_budget_is_no_failure() -> None:
    from resilience_django.deadline import DeadlineExceeded

    async def part(exc: BaseException | None) -> None:
        await asyncio.sleep(0)
        if exc is not None:
            raise exc

    @breaker("dep")
    async def fan_out(*excs: BaseException | None) -> None:
        async with asyncio.TaskGroup() as group:
            for exc in excs:
                group.create_task(part(exc))

    for _ in range(3):
        with pytest.raises(ExceptionGroup):
            await fan_out(DeadlineExceeded("spent"), DeadlineExceeded("spent"))
    assert get_breaker("dep").state == "closed"
    # A member that really failed still counts, the caller's deadline beside it or not.
    for _ in range(2):
        with pytest.raises(ExceptionGroup):
            await fan_out(DeadlineExceeded("spent"), ConnectionError("down"))
    assert get_breaker("dep").state == "open"


async def test_a_function_marked_as_a_coroutine_function_is_guarded_while_it_runs() -> None:
    from asgiref.sync import markcoroutinefunction

    async def fetch() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("down")

    def view() -> Any:  # how Django's as_view() looks for an async class-based view
        return fetch()

    guarded = breaker("dep")(markcoroutinefunction(view))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await guarded()
    assert get_breaker("dep").state == "open"
