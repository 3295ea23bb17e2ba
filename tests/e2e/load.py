"""A bounded open-loop load generator for the overload tests: raw HTTP/1.1 on 127.0.0.1.

Open loop: requests leave at the offered rate whether or not earlier ones
came back (a closed loop would slow down with the server and never
overload it).  Bounded: at most ``max_outstanding`` at once, so a stuck
server cannot make the test open sockets without end.  Raw sockets rather
than an HTTP client library, to keep the generator's own cost, on the same
machine as the server, small.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """Latencies in seconds, sorted, by how the request ended."""

    ok: list[float] = field(default_factory=list)
    shed: list[float] = field(default_factory=list)  # 503
    other: list[int] = field(default_factory=list)  # any other status
    unsent: int = 0  # left out because max_outstanding were already in flight
    seconds: float = 0.0  # how long requests were offered


async def get(port: int, path: str = "/") -> tuple[int, float]:
    """One GET on a new connection; its status and how long it took."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        await reader.read()
        return status, time.perf_counter() - started
    finally:
        writer.close()


async def overload(
    port: int,
    *,
    rate: float,
    seconds: float,
    path: str = "/",
    max_outstanding: int = 200,
    timeout: float = 5.0,  # each request's bound
    stop: asyncio.Event | None = None,
) -> Outcome:
    """Offer ``rate`` requests a second for ``seconds``, or until ``stop`` is set; wait for
    all of them."""
    outcome = Outcome()
    tasks: set[asyncio.Task[None]] = set()

    async def fire() -> None:
        status, took = await asyncio.wait_for(get(port, path), timeout)
        if status == 200:
            outcome.ok.append(took)
        elif status == 503:
            outcome.shed.append(took)
        else:
            outcome.other.append(status)

    started = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - started) < seconds and not (stop and stop.is_set()):
        while sent < int(now * rate):
            sent += 1
            if len(tasks) >= max_outstanding:
                outcome.unsent += 1
                continue
            task = asyncio.create_task(fire())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.002)
    outcome.seconds = now
    await asyncio.gather(*tasks)
    outcome.ok.sort()
    outcome.shed.sort()
    return outcome


def p99(values: list[float]) -> float:
    return values[int(0.99 * (len(values) - 1))]


async def burst(
    port: int,
    paths: list[str],
    *,
    connections: int = 64,
    timeout: float = 30.0,
    headers: str = "",
) -> list[tuple[str, int]]:
    """Send every path of ``paths`` once over ``connections`` concurrent connections.

    Closed loop: each of the ``connections`` workers sends its next request
    as soon as the previous one is answered, one new connection per request
    (so the kernel spreads them over every worker process).  Returns
    ``(path, status)`` in completion order; a request that fails to connect
    or answer within ``timeout`` raises.
    """
    queue = list(reversed(paths))
    results: list[tuple[str, int]] = []

    async def one(path: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
            writer.write(request.encode())
            status = int((await reader.readline()).split()[1])
            await reader.read()
            return status
        finally:
            writer.close()

    async def worker() -> None:
        while queue:
            path = queue.pop()
            results.append((path, await asyncio.wait_for(one(path), timeout)))

    await asyncio.gather(*(worker() for _ in range(connections)))
    return results
