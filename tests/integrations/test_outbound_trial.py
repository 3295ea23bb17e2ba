"""A call that never ran gives its breaker token back: a half-open trial slot is not lost
to a call cancelled or interrupted while it waits for a bulkhead slot (real server,
real event loop, a real signal on the main thread)."""

from __future__ import annotations

import asyncio
import linecache
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import httpx
import pytest

from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import get_breaker
from resilience_django.breakers.state import Breaker
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience_django.shedding.bulkhead import Bulkhead, Permit
from tests.utils.waiting import wait_for


class Counting(BaseHTTPRequestHandler):
    """Answers 200 and counts the requests that reached it."""

    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            Counting.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _half_open_with_one_trial(name: str) -> Breaker:
    breaker = get_breaker(name)
    breaker.configure(
        BreakerPolicy(
            failure_threshold=1,
            open_for=0.001,
            half_open_calls=1,
            close_ratio=1.0,
            half_open_max_wait=3600.0,  # a lost trial would hold the breaker for an hour
        )
    )
    breaker.reset()
    breaker.record_failure(breaker.acquire())
    assert breaker.state == "open"

    def half_open() -> bool:
        breaker.poll()
        return breaker.state == "half_open"

    wait_for(half_open, what="open_for elapsed")
    return breaker


def _held(bulkhead: Bulkhead) -> Permit:
    held = bulkhead.acquire_sync(0)
    assert isinstance(held, Permit)
    return held


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not true in time"
        await asyncio.sleep(0.01)


async def test_async_call_cancelled_waiting_for_a_bulkhead_slot_gives_its_trial_back(
    server: str,
) -> None:
    name = "outbound-trial-cancelled"
    breaker = _half_open_with_one_trial(name)
    bulkhead = Bulkhead("outbound-trial-cancelled", 1, queue=4)
    held = _held(bulkhead)
    hits = Counting.hits
    transport = AsyncResilientTransport(breaker=name, bulkhead=bulkhead)
    async with httpx.AsyncClient(transport=transport) as client:
        waiting = asyncio.ensure_future(client.get(server + "/cancelled"))
        await _until(lambda: bulkhead.waiting == 1)
        assert breaker.snapshot()["trials"]["admitted"] == 1  # it holds the only trial
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert breaker.snapshot()["trials"]["admitted"] == 0
        held.release()
        # The trial slot is free again: the next call is the trial, and it closes the breaker.
        response = await client.get(server + "/cancelled")
    assert response.status_code == 200
    assert Counting.hits == hits + 1  # the cancelled call never reached the server
    assert breaker.state == "closed"


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _blocked_on_its_slot(thread_id: int) -> bool:
    """The thread is inside the bulkhead's blocking wait (its try block), not on the way in."""
    frame: Any = sys._current_frames().get(thread_id)
    if frame is None or frame.f_code.co_name != "acquire_sync":
        return False
    return "lock.acquire(timeout" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_sync_call_interrupted_waiting_for_a_bulkhead_slot_gives_its_trial_back(
    server: str,
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("a signal handler runs on the main thread only")
    name = "outbound-trial-interrupted"
    breaker = _half_open_with_one_trial(name)
    bulkhead = Bulkhead("outbound-trial-interrupted", 1, queue=4)
    held = _held(bulkhead)
    hits = Counting.hits
    main = threading.get_ident()
    admitted: list[int] = []

    def interrupt() -> None:
        wait_for(lambda: bulkhead.waiting == 1 and _blocked_on_its_slot(main), what="waiting")
        admitted.append(breaker.snapshot()["trials"]["admitted"])
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, _raise_interrupted)
    interrupter = threading.Thread(target=interrupt)
    try:
        with httpx.Client(transport=ResilientTransport(breaker=name, bulkhead=bulkhead)) as client:
            interrupter.start()
            with pytest.raises(Interrupted):
                client.get(server + "/interrupted")
            interrupter.join()
            assert admitted == [1]  # it held the only trial while it waited
            assert breaker.snapshot()["trials"]["admitted"] == 0
            held.release()
            response = client.get(server + "/interrupted")
    finally:
        interrupter.join()
        signal.signal(signal.SIGUSR1, previous)
    assert response.status_code == 200
    assert Counting.hits == hits + 1  # the interrupted call never reached the server
    assert breaker.state == "closed"
