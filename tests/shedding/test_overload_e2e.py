"""A real uvicorn server with a real capacity, under 2x overload from a bounded load generator."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from resilience_django.shedding import AdaptiveLimit, Bulkhead

pytestmark = pytest.mark.e2e

CAPACITY = 5
SERVICE = 0.040  # so the server can do 125 requests/s


def shedding_app(bulkhead: Bulkhead) -> Any:
    capacity = asyncio.Semaphore(CAPACITY)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        permit = await bulkhead.acquire_async(0.100)
        if not permit.admitted:
            status, headers = 503, [(b"retry-after", b"1")]
        else:
            try:
                async with capacity:
                    await asyncio.sleep(SERVICE)
            finally:
                permit.release()
            status, headers = 200, []
        headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", lifespan="off", access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


async def get(port: int) -> tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = int((await reader.readline()).split()[1])
        await reader.read()
        return status, time.perf_counter() - started
    finally:
        writer.close()


async def overload(port: int, seconds: float) -> tuple[list[float], list[float]]:
    """Offer twice the capacity, open loop, at most 200 requests outstanding."""
    rate = 2 * CAPACITY / SERVICE
    ok: list[float] = []
    shed: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def fire() -> None:
        status, took = await asyncio.wait_for(get(port), 5.0)
        (ok if status == 200 else shed).append(took)

    started = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - started) < seconds:
        while sent < int(now * rate) and len(tasks) < 200:
            sent += 1
            task = asyncio.create_task(fire())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    ok.sort()
    shed.sort()
    return ok, shed


def p99(values: list[float]) -> float:
    return values[int(0.99 * (len(values) - 1))]


async def test_shed_requests_get_503_fast_and_admitted_p99_stays_bounded(serve: Any) -> None:
    bulkhead = Bulkhead("e2e", CAPACITY, queue=CAPACITY, report_metrics=False)
    port = serve(shedding_app(bulkhead))
    ok, shed = await overload(port, seconds=2.0)
    assert shed, "2x overload must shed"
    # Admitted: service time plus at most max_wait (100 ms) in the queue, plus
    # scheduling noise on a shared machine.
    assert p99(ok) < SERVICE + 0.100 + 0.250
    # Shed: at once when the queue is full, or after max_wait; never later.
    assert p99(shed) < 0.100 + 0.250
    assert shed[len(shed) // 2] < 0.050  # most at once: the queue was full
    # Goodput near capacity: shedding keeps the server doing useful work.
    assert len(ok) / 2.0 > 0.6 * CAPACITY / SERVICE
    assert bulkhead.inflight == 0


async def test_adaptive_limit_settles_near_the_real_capacity(serve: Any) -> None:
    limit = AdaptiveLimit(initial_limit=2, min_limit=2, max_limit=100, probe_samples=20)
    bulkhead = Bulkhead("e2e-adaptive", limit, queue=CAPACITY, report_metrics=False)
    port = serve(shedding_app(bulkhead))
    await overload(port, seconds=4.0)
    # Latency-driven: it settles where latency is rtt_tolerance (1.5) times the
    # no-load latency, about 1.5 * CAPACITY plus sqrt headroom; far from max.
    assert CAPACITY <= bulkhead.limit <= 3 * CAPACITY, bulkhead.limit
