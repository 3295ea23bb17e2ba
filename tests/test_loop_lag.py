"""The event loop lag sampler: a report of the loop's lateness, and nothing more."""

from __future__ import annotations

import asyncio
import time

import prometheus_client

from resilience_django import loop_lag


async def test_one_sampler_per_loop() -> None:
    assert loop_lag.watch(asyncio.get_running_loop()) is loop_lag.watch(asyncio.get_running_loop())


async def test_a_blocked_loop_shows_as_lag_in_the_gauge() -> None:
    sampler = loop_lag.watch(asyncio.get_running_loop())
    time.sleep(0.5)  # the loop is blocked: its next timer (due in 0.25 s) runs late
    deadline = time.monotonic() + 10
    while sampler.lag < 0.1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sampler.lag >= 0.1
    value = prometheus_client.REGISTRY.get_sample_value("resilience_event_loop_lag_seconds")
    assert value is not None and value >= 0.1


async def test_an_idle_loop_shows_little_lag() -> None:
    sampler = loop_lag.LoopLagSampler(asyncio.get_running_loop(), interval=0.02)
    # A loaded machine can stall the process (and so this loop) now and then;
    # the lag then reads high until that sample leaves the window of 8.  An
    # idle loop reads little lag again within a few windows: a lag that stays
    # high (or goes negative) does not.
    deadline = time.monotonic() + 10
    while not (len(sampler._recent) >= 3 and sampler.lag < 0.1):
        assert time.monotonic() < deadline, (list(sampler._recent), sampler.lag)
        await asyncio.sleep(0.01)
    assert 0.0 <= sampler.lag < 0.1
