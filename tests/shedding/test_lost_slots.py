"""Slots come back on paths that skip ``release()``: a thread interrupted while it queues, a
permit dropped without being released (a response Django lost, see test_lost_stream_e2e.py)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from resilience_django.shedding.bulkhead import Bulkhead, Permit, Shed

needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")


class Interrupted(Exception):
    pass


def _admitted(result: Permit | Shed) -> Permit:
    assert isinstance(result, Permit), result
    return result


def _waiting_line() -> int:
    """The line where ``acquire_sync`` blocks, waiting for a slot."""
    lines, first = inspect.getsourcelines(Bulkhead.acquire_sync)
    return first + next(i for i, line in enumerate(lines) if "lock.acquire(timeout" in line)


WAITING_LINE = _waiting_line()


@contextmanager
def interrupt_waiter(before: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Raise ``Interrupted`` in this (the main) thread from a signal handler once it blocks in
    the bulkhead's queue, after calling ``before()``: what a SIGALRM request timeout does to a
    worker."""

    def handler(signum: int, frame: Any) -> None:
        waiting = frame.f_code is Bulkhead.acquire_sync.__code__ and frame.f_lineno == WAITING_LINE
        if not waiting:  # not queued yet (a loaded machine): look again soon
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            return
        before()
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@needs_alarm
def test_a_thread_interrupted_while_queued_gives_its_place_back() -> None:
    bulkhead = Bulkhead("interrupted", 1, queue=1, report_metrics=False)
    holder = _admitted(bulkhead.acquire_sync(0))
    with interrupt_waiter(), pytest.raises(Interrupted):
        bulkhead.acquire_sync(30)
    assert bulkhead.waiting == 0
    released = threading.Thread(target=holder.release)
    released.start()
    released.join()
    # Before: the slot went to the thread that had left, and the bulkhead was full for good.
    assert bulkhead.inflight == 0
    _admitted(bulkhead.acquire_sync(0)).release()


@needs_alarm
def test_a_thread_interrupted_after_being_granted_a_slot_hands_it_back() -> None:
    bulkhead = Bulkhead("interrupted-granted", 1, queue=1, report_metrics=False)
    holder = _admitted(bulkhead.acquire_sync(0))
    # The release grants the slot to the queued thread; then it is interrupted.
    with interrupt_waiter(before=holder.release), pytest.raises(Interrupted):
        bulkhead.acquire_sync(30)
    assert (bulkhead.inflight, bulkhead.waiting) == (0, 0)
    _admitted(bulkhead.acquire_sync(0)).release()


def _gauge(name: str) -> float:
    return REGISTRY.get_sample_value("resilience_inflight_requests", {"route": name}) or 0.0


def test_a_permit_dropped_unreleased_gives_its_slot_to_a_waiting_thread() -> None:
    bulkhead = Bulkhead("dropped-permit", 1, queue=1)
    before = _gauge("dropped-permit")
    lost: list[Any] = [_admitted(bulkhead.acquire_sync(0))]
    lost.append(lost)  # in a reference cycle, as Django's lost responses are
    got: list[Permit | Shed] = []
    waiter = threading.Thread(target=lambda: got.append(bulkhead.acquire_sync(30)))
    waiter.start()
    try:
        while bulkhead.waiting == 0 and waiter.is_alive():
            waiter.join(0.01)
        del lost
        gc.collect()
    finally:
        waiter.join(30)
    permit = _admitted(got[0])
    assert bulkhead.inflight == 1
    permit.release()
    # The gauge hears of the collected slot at the next admission or release.
    assert _gauge("dropped-permit") == before
    assert bulkhead.inflight == 0


async def test_a_permit_dropped_unreleased_gives_its_slot_to_a_waiting_task() -> None:
    bulkhead = Bulkhead("dropped-permit-async", 1, queue=1, report_metrics=False)
    lost: list[Any] = [_admitted(await bulkhead.acquire_async(0))]
    lost.append(lost)
    waiting = asyncio.ensure_future(bulkhead.acquire_async(30))
    while bulkhead.waiting == 0:
        await asyncio.sleep(0)
    del lost
    gc.collect()
    permit = _admitted(await asyncio.wait_for(waiting, 30))
    permit.release()
    assert (bulkhead.inflight, bulkhead.waiting) == (0, 0)
