"""Settling alarms on a busy loop: work of several round trips whose answers are there."""

from __future__ import annotations

import asyncio
import time

from resilience_django.loop_alarm import SETTLE_CHECKS, SETTLE_STEP, alarm_clock


async def _multi_step_work_on_a_busy_loop(settle: bool) -> str:
    """Work that needs an answer and then 4 more loop turns (a connect, a handshake,
    the call), under an alarm at +10 ms, while every loop turn takes 15 ms."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    busy_turns = 12

    def busy() -> None:  # another request's work, turn after turn
        nonlocal busy_turns
        time.sleep(0.015)
        busy_turns -= 1
        if busy_turns:
            loop.call_soon(busy)

    async def work() -> str:
        task = asyncio.current_task()
        assert task is not None
        alarm = alarm_clock(loop).arm(task, loop.time() + 0.01, settle=settle)
        try:
            result = await answer
            for _ in range(4):  # each step's reply is already there: one turn each
                await asyncio.sleep(0)
            return result
        except asyncio.CancelledError:
            if alarm.fired_for(task):
                return "timed out"
            raise
        finally:
            alarm.close(task)

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    loop.call_at(loop.time() + 0.005, answer.set_result, "answered")
    loop.call_soon(busy)
    return await task


async def test_a_settling_alarm_lets_several_ready_steps_finish_on_a_busy_loop() -> None:
    assert await _multi_step_work_on_a_busy_loop(settle=True) == "answered"


async def test_a_plain_alarm_cancels_the_same_work() -> None:
    assert await _multi_step_work_on_a_busy_loop(settle=False) == "timed out"


async def test_on_an_idle_loop_the_grace_is_a_few_milliseconds() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    start = loop.time()
    alarm = alarm_clock(loop).arm(task, start + 0.02, settle=True)
    try:
        await asyncio.sleep(5)  # an answer that never comes
        outcome = "slept"
    except asyncio.CancelledError:
        outcome = "timed out" if alarm.fired_for(task) else "cancelled"
    finally:
        alarm.close(task)
    waited = loop.time() - start
    assert outcome == "timed out"
    grace = SETTLE_CHECKS * SETTLE_STEP
    # Generous for a loaded machine, and still well short of the 5 s sleep.
    assert 0.02 + grace <= waited < 0.02 + grace + 1.5
