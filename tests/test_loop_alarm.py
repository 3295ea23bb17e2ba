"""The per-loop alarm clock that cancels async handlers at their deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from resilience_django.loop_alarm import AlarmClock, alarm_clock


async def _sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


async def test_alarm_cancels_the_task_at_its_time_and_says_it_was_its_own() -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    outcome: list[object] = []

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        alarm = alarm_clock(loop).arm(task, loop.time() + 0.05)
        try:
            await asyncio.sleep(2)
        except asyncio.CancelledError:
            outcome.append(alarm.fired_for(task))
            outcome.append(task.cancelling())
        finally:
            alarm.close(task)

    await guarded()
    elapsed = time.monotonic() - started
    assert outcome == [True, 0]  # ours, and taken back: the task is not left cancelling
    assert 0.045 <= elapsed < 1.5  # at the alarm, not after the 2 s sleep (a loaded machine)


async def test_disarmed_alarm_never_fires() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(_sleeper(0.15))
    alarm = alarm_clock(loop).arm(task, loop.time() + 0.03)
    alarm.close(task)
    assert await task == "slept"
    assert not alarm.fired


async def test_cancellation_from_elsewhere_is_not_the_alarms() -> None:
    loop = asyncio.get_running_loop()
    seen: list[bool] = []

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        alarm = alarm_clock(loop).arm(task, loop.time() + 5)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(alarm.fired_for(task))
            raise
        finally:
            alarm.close(task)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


async def test_alarm_and_an_outside_cancel_together_are_not_only_the_alarms() -> None:
    loop = asyncio.get_running_loop()
    clock = AlarmClock(loop)
    when = loop.time() + 0.02
    seen: list[bool] = []

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        alarm = clock.arm(task, when)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(alarm.fired_for(task))
            raise
        finally:
            alarm.close(task)

    task = asyncio.create_task(guarded())
    # Someone else cancels at the very time the alarm fires: both timers are
    # due in the same loop iteration.
    loop.call_at(when, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


async def test_rescheduled_alarm_fires_at_the_new_time_once() -> None:
    loop = asyncio.get_running_loop()
    clock = AlarmClock(loop)
    task = asyncio.create_task(_sleeper(10))
    alarm = clock.arm(task, loop.time() + 5.0)
    alarm.reschedule(loop.time() + 0.03)
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.0  # the new time, not the old 5 s (a loaded machine)
    assert alarm.fired
    # The stale entry for the old time does nothing when it comes due.
    other = asyncio.create_task(_sleeper(0.05))
    assert await other == "slept"


async def test_alarms_fire_in_time_order_whatever_the_arming_order() -> None:
    loop = asyncio.get_running_loop()
    clock = AlarmClock(loop)
    order: list[int] = []

    async def wait(n: int) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            order.append(n)

    delays = {1: 0.06, 2: 0.02, 3: 0.04}
    now = loop.time()
    tasks = {n: asyncio.create_task(wait(n)) for n in delays}
    for n, delay in delays.items():
        clock.arm(tasks[n], now + delay)
    await asyncio.gather(*tasks.values())
    assert order == [2, 3, 1]


async def test_heap_stays_bounded_by_the_live_alarms_not_the_rate() -> None:
    loop = asyncio.get_running_loop()
    clock = AlarmClock(loop)
    task = asyncio.create_task(_sleeper(1))
    # 20,000 requests with a 30 s budget that all ended at once.
    for _ in range(20_000):
        clock.arm(task, loop.time() + 30).close(task)
    assert len(clock._heap) <= 2 * AlarmClock._MIN_COMPACT
    live = [clock.arm(task, loop.time() + 30) for _ in range(3000)]
    for _ in range(20_000):
        clock.arm(task, loop.time() + 30).close(task)
    assert len(clock._heap) <= 2 * (len(live) + AlarmClock._MIN_COMPACT)
    for alarm in live:
        alarm.close(task)
    task.cancel()


async def test_each_loop_has_its_own_clock() -> None:
    mine = alarm_clock(asyncio.get_running_loop())
    assert alarm_clock(asyncio.get_running_loop()) is mine
    other_loop = asyncio.new_event_loop()
    try:
        assert alarm_clock(other_loop) is not mine
    finally:
        other_loop.close()


async def test_work_that_swallows_the_cancellation_leaves_the_task_clean() -> None:
    loop = asyncio.get_running_loop()
    clock = AlarmClock(loop)

    async def stubborn() -> str:
        task = asyncio.current_task()
        assert task is not None
        alarm = clock.arm(task, loop.time() + 0.02)
        try:
            try:
                await asyncio.sleep(2)
            except asyncio.CancelledError:
                return "swallowed"  # the view ignored the cancellation and answered
        finally:
            alarm.close(task)
        return "slept"

    async def outer() -> tuple[str, int, str]:
        task = asyncio.current_task()
        assert task is not None
        result = await stubborn()
        cancelling = task.cancelling()
        # An asyncio.timeout entered later in the same task must still work.
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(1)
        except TimeoutError:
            return result, cancelling, "timeout"
        return result, cancelling, "no timeout"

    assert await asyncio.create_task(outer()) == ("swallowed", 0, "timeout")


def test_clocks_of_closed_loops_are_let_go() -> None:
    from resilience_django import loop_alarm

    async def one_request() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        alarm = alarm_clock(loop).arm(task, loop.time() + 30)
        alarm.close(task)

    # async_to_sync under WSGI runs every request in a loop of its own.
    for _ in range(50):
        asyncio.run(one_request())
    assert len(loop_alarm._clocks) <= 2


async def _answer_arrives_while_the_loop_is_blocked(settle: bool) -> str:
    """A task waits for an answer under an alarm at +10 ms; the loop is blocked
    for 50 ms, and the answer arrives (at +5 ms) before the alarm is due."""
    import time

    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    async def wait_for_answer() -> str:
        task = asyncio.current_task()
        assert task is not None
        alarm = alarm_clock(loop).arm(task, loop.time() + 0.01, settle=settle)
        try:
            return await answer
        except asyncio.CancelledError:
            if alarm.fired_for(task):
                return "timed out"
            raise
        finally:
            alarm.close(task)

    task = asyncio.create_task(wait_for_answer())
    await asyncio.sleep(0)  # the task now waits
    loop.call_at(loop.time() + 0.005, answer.set_result, "answered")
    loop.call_soon(time.sleep, 0.05)  # the busy worker
    return await task


async def test_a_settling_alarm_takes_an_answer_the_blocked_loop_read_late() -> None:
    assert await _answer_arrives_while_the_loop_is_blocked(settle=True) == "answered"


async def test_a_plain_alarm_cancels_work_whose_answer_the_blocked_loop_read_late() -> None:
    # Why the Redis limiter settles: the answer and the alarm fall due in the
    # same loop turn, and the alarm cancels the task before it wakes.
    assert await _answer_arrives_while_the_loop_is_blocked(settle=False) == "timed out"


async def test_a_settling_alarm_still_cancels_work_that_has_no_answer() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    alarm = alarm_clock(loop).arm(task, loop.time() + 0.01, settle=True)
    try:
        await asyncio.sleep(5)
        outcome = "slept"
    except asyncio.CancelledError:
        outcome = "timed out" if alarm.fired_for(task) else "cancelled"
    finally:
        alarm.close(task)
    assert outcome == "timed out"
    assert task.cancelling() == 0
