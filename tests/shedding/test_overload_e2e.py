"""A real uvicorn server with a real capacity, under 2x overload from a bounded load generator.

The fixed bulkhead is tested on a bare ASGI app served in-process (its
figures then measure the bulkhead, not Django); the adaptive limit on the
real stack, a Django view behind the middleware in its own uvicorn process,
because what it must find is the capacity of the whole server.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from resilience_django.shedding import Bulkhead
from tests.e2e.load import get, overload, p99
from tests.e2e.server import uvicorn_server
from tests.utils.waiting import wait_for

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
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(app: Any) -> int:
        # Bound here and handed over, so no other process can take the port in between.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="error", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
        thread.start()
        servers.append((server, thread, sock))
        wait_for(lambda: server.started or not thread.is_alive(), 30, "uvicorn starts")
        assert server.started, "uvicorn did not start"
        return int(sock.getsockname()[1])

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def test_shed_requests_get_503_fast_and_admitted_p99_stays_bounded(serve: Any) -> None:
    bulkhead = Bulkhead("e2e", CAPACITY, queue=CAPACITY, report_metrics=False)
    port = serve(shedding_app(bulkhead))
    seen = await overload(port, rate=2 * CAPACITY / SERVICE, seconds=2.0)
    ok, shed = seen.ok, seen.shed
    assert shed, "2x overload must shed"
    # Admitted: service time plus at most max_wait (100 ms) in the queue, plus
    # scheduling noise on a loaded 2-core machine (client and server share this
    # process; 0.64 s was seen with other test suites running beside it). Without
    # shedding the backlog of 2 s at twice the capacity makes the tail about 2 s,
    # so the bound still tells the two apart.
    noise = 0.600
    assert p99(ok) < SERVICE + 0.100 + noise
    # Shed: at once when the queue is full, or after max_wait; never later.
    assert p99(shed) < 0.100 + noise
    assert shed[len(shed) // 2] < 0.050  # most at once: the queue was full
    # Goodput near capacity: shedding keeps the server doing useful work.
    assert len(ok) / 2.0 > 0.6 * CAPACITY / SERVICE
    assert bulkhead.inflight == 0


# The adaptive test's server: SERVED at once, each for HOLD seconds, so its real
# concurrency capacity is SERVED (53 requests/s).  Rates stay low on purpose: a
# Django request costs a few ms of CPU, and on a shared 2-core machine a server
# offered hundreds a second is limited by its CPU, not by the capacity under test.
SERVED = 8
HOLD = 0.150
FLOOR = 5
MAX_WAIT = 0.100
ADAPTIVE_CONFIG = {
    "SHEDDING": [
        {
            "name": "work",
            "path": "/work/",
            "adaptive": True,
            "min_concurrent": FLOOR,
            "max_concurrent": 10 * SERVED,  # a ceiling far above: only latency can stop it
            # Drained well within max_wait (4 at 53/s: 75 ms), so the overflow
            # is refused at once rather than after waiting in vain.
            "queue": SERVED // 2,
            "max_wait": f"{int(MAX_WAIT * 1000)}ms",
        }
    ]
}


NEAR = (0.75 * SERVED, 1.25 * SERVED)
SETTLED_FOR = 3.0  # seconds of readings that must be mostly NEAR the capacity


def _settled(readings: list[tuple[float, dict[str, Any]]]) -> bool:
    """Whether 3 in 4 readings of the last SETTLED_FOR seconds were NEAR the capacity.

    Not every one: a stall of the server on a loaded machine reads as latency, and
    the limit dips for a window or two before it climbs back."""
    if not readings or readings[-1][0] - readings[0][0] < SETTLED_FOR:
        return False
    last = [state["limit"] for at, state in readings if at >= readings[-1][0] - SETTLED_FOR]
    near = [limit for limit in last if NEAR[0] <= limit <= NEAR[1]]
    return len(last) >= 8 and len(near) >= 0.75 * len(last)


async def _watch_limit(
    url: str, stop: asyncio.Event, started: float
) -> list[tuple[float, dict[str, Any]]]:
    """The bulkhead as the server reports it, every 250 ms, with seconds since ``started``;
    sets ``stop`` once the limit has settled."""
    readings: list[tuple[float, dict[str, Any]]] = []
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            state = (await client.get(url + "/shedding/work/")).json()
            readings.append((round(time.perf_counter() - started, 2), state))
            if _settled(readings):
                stop.set()
            await asyncio.sleep(0.25)
    return readings


async def _warm_up(port: int) -> None:
    """FLOOR clients one request after another: the first probe's 50 samples at no load.

    As a process that served some traffic before the overload began would
    have taken them.  Probed at start-up *under* 2x overload, on a shared
    2-core machine, the baseline came out 10-60 % high (a cold process, and
    every request slowed by the CPU the overload costs), and the limit sits
    that much higher until the next probe a minute later: see
    docs/shedding.md.
    """

    async def client() -> None:
        for _ in range(12):
            status, _ = await get(port, "/work/")
            assert status == 200

    await asyncio.gather(*(client() for _ in range(FLOOR)))


async def test_adaptive_limit_settles_near_the_real_capacity_of_a_django_view() -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.e2e.shedding_settings",
        "SHEDDING_TEST_CAPACITY": str(SERVED),
        "SHEDDING_TEST_SERVICE": str(HOLD),
    }
    with uvicorn_server(ADAPTIVE_CONFIG, extra_env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        await _warm_up(port)
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_limit(server.url, stop, time.perf_counter()))
        # Twice the capacity until the limit has settled: about 2 s climbing from the
        # floor, then SETTLED_FOR seconds near the capacity.  The climb takes longer on
        # a loaded machine (each window waits for its samples): a generous deadline.
        rate = 2 * SERVED / HOLD
        seen = await overload(port, rate=rate, seconds=30.0, path="/work/", stop=stop)
        stop.set()
        readings = await watcher
    trace = [(at, state["limit"], state["baseline"]) for at, state in readings]
    # Pinned at the floor for 5 windows, it would have probed again.
    assert not any(state["probing"] for _, state in readings), trace
    # Near the real capacity, and held there: the controller aims at (1 + buffer) x
    # capacity, buffer 0.1; the Gradient2 one before it sat at 1.5 x capacity + sqrt.
    assert _settled(readings), f"not settled near {SERVED} in {seen.seconds:.1f}s: {trace}"
    limits = [limit for _, limit, _ in trace]
    assert min(limits) >= FLOOR and max(limits) <= 1.5 * SERVED, trace  # nor overshot on the way
    assert seen.shed and not seen.other, seen.other
    # Shed: most at once, as the queue was full, and sooner than an admitted request
    # could even be served; the rest after max_wait.  NOISE is for a shared 2-core
    # machine, where a stall of either process delays every request then in flight
    # (up to 1.3 s at load 10).  Without shedding the backlog would grow by a second
    # each second of the run (at least SETTLED_FOR + the climb), so p99 still tells.
    noise = 1.0
    assert statistics.median(seen.shed) < HOLD, seen.shed
    assert p99(seen.shed) < MAX_WAIT + noise, seen.shed
    # Admitted: the view's latency near the capacity (1.1 x HOLD) plus at most
    # max_wait in the queue; the median without slack, the tail with it.
    assert statistics.median(seen.ok) < 2 * HOLD + MAX_WAIT, seen.ok
    assert p99(seen.ok) < 2 * HOLD + MAX_WAIT + noise, seen.ok
    # The work still gets done: over half the capacity, climb included.
    assert len(seen.ok) / seen.seconds > 0.5 * SERVED / HOLD
