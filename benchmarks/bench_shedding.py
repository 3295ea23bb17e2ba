"""Load shedding under 2x overload: a real uvicorn server, shedding off vs on vs adaptive.

The server is a tiny pure ASGI app with a real capacity: ``CAPACITY`` requests
are served at once (an ``asyncio.Semaphore``, standing for a DB pool or worker
threads), each takes ``SERVICE`` seconds, so it can serve CAPACITY / SERVICE
requests a second.  A bounded open-loop load generator on 127.0.0.1 offers
twice that, every request with a client timeout.  We compare:

* ``off``: no shedding; requests queue inside the server until clients give up,
  and the server keeps working on requests nobody waits for any more;
* ``on``: a ``Bulkhead`` of CAPACITY slots, a queue of CAPACITY and a 100 ms
  ``max_wait``; the rest get 503 + Retry-After at once;
* ``adaptive``: the same bulkhead with an ``AdaptiveLimit`` that must find the
  capacity from latency alone (we report where it settled: the median and
  range of the limit the server reports over the second half of the run).

Figures: goodput (200s answered within the client timeout, per second), the
p50/p99 latency of admitted (200) requests, and how fast 503s come back.

Run: ``python benchmarks/bench_shedding.py`` (about 30 s; ``--quick`` about 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

CAPACITY = 10
SERVICE = 0.050  # seconds per request: capacity = 200 requests/s
OVERLOAD = 2.0
CLIENT_TIMEOUT = 1.0
MAX_OUTSTANDING = 400  # the generator's bound: arrivals beyond it are not sent


# --- the server (runs in a subprocess) ------------------------------------------


def make_app(mode: str) -> Any:
    from resilience_django.shedding import AdaptiveLimit, Bulkhead

    capacity = asyncio.Semaphore(CAPACITY)
    bulkhead: Bulkhead | None = None
    if mode == "on":
        bulkhead = Bulkhead("bench", CAPACITY, queue=CAPACITY, report_metrics=False)
    elif mode == "adaptive":
        limit = AdaptiveLimit(initial_limit=5, min_limit=2, max_limit=200, probe_samples=20)
        bulkhead = Bulkhead("bench", limit, queue=CAPACITY, report_metrics=False)

    async def send_text(send: Any, status: int, body: bytes, extra: list[Any]) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})

    async def work() -> None:
        async with capacity:
            await asyncio.sleep(SERVICE)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/limit":
            value = bulkhead.limit if bulkhead is not None else 0
            await send_text(send, 200, str(value).encode(), [])
            return
        if bulkhead is None:
            await work()
            await send_text(send, 200, b"ok", [])
            return
        permit = await bulkhead.acquire_async(0.100)
        if not permit.admitted:
            retry_after = b"%d" % max(1, round(getattr(permit, "retry_after", 1.0)))
            await send_text(send, 503, b"shed", [(b"retry-after", retry_after)])
            return
        try:
            await work()
        finally:
            permit.release()
        await send_text(send, 200, b"ok", [])

    return app


def serve(mode: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        make_app(mode),
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        access_log=False,
    )


# --- the load generator ---------------------------------------------------------


async def one_request(port: int, path: str = "/") -> tuple[int, float]:
    """A bare HTTP/1.1 GET (new connection each time); returns status and seconds."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status_line = await reader.readline()
        await reader.read()
        return int(status_line.split()[1]), time.perf_counter() - started
    finally:
        writer.close()


async def generate(port: int, rate: float, seconds: float) -> dict[str, Any]:
    outstanding = 0
    ok: list[float] = []
    shed: list[float] = []
    timeouts = errors = not_sent = 0

    async def fire() -> None:
        nonlocal outstanding, timeouts, errors
        try:
            status, took = await asyncio.wait_for(one_request(port), CLIENT_TIMEOUT)
        except TimeoutError:
            timeouts += 1
        except OSError:
            errors += 1
        else:
            (ok if status == 200 else shed).append(took)
        finally:
            outstanding -= 1

    tasks = set()
    interval = 1.0 / rate
    started = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - started) < seconds:
        due = int(now / interval) + 1
        while sent < due:
            sent += 1
            if outstanding >= MAX_OUTSTANDING:
                not_sent += 1
                continue
            outstanding += 1
            task = asyncio.create_task(fire())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(interval / 2)
    await asyncio.gather(*tasks)
    ok.sort()
    shed.sort()

    def pct(values: list[float], q: float) -> float | None:
        return (
            round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1) if values else None
        )

    return {
        "offered_rps": round(rate, 1),
        "goodput_rps": round(len(ok) / seconds, 1),
        "ok": len(ok),
        "shed_503": len(shed),
        "timeouts": timeouts,
        "errors": errors,
        "not_sent": not_sent,
        "ok_p50_ms": pct(ok, 0.50),
        "ok_p99_ms": pct(ok, 0.99),
        "shed_p99_ms": pct(shed, 0.99),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_mode(mode: str, seconds: float) -> dict[str, Any]:
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", mode, "--port", str(port)], env=env
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server for mode {mode!r} did not start") from None
                time.sleep(0.05)
        rate = OVERLOAD * CAPACITY / SERVICE
        if mode != "adaptive":
            return asyncio.run(generate(port, rate, seconds))
        figures, limits = asyncio.run(_generate_watching(port, rate, seconds))
        # The median over the second half, not one reading at the end: the
        # limit moves a step or two around where it settled.
        settled = sorted(limits[len(limits) // 2 :])
        figures["settled_limit"] = settled[len(settled) // 2]
        figures["settled_range"] = f"{settled[0]}-{settled[-1]}"
        figures["capacity"] = CAPACITY
        return figures
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _generate_watching(
    port: int, rate: float, seconds: float
) -> tuple[dict[str, Any], list[int]]:
    """``generate``, reading the server's adaptive limit every 200 ms meanwhile."""
    limits: list[int] = []

    async def watch() -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            limits.append(int(await _read_limit(port)))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    figures = await generate(port, rate, seconds)
    await watcher
    return figures, limits


async def _read_limit(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /limit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()


def run(quick: bool) -> dict[str, Any]:
    """Figures for benchmarks/run_all.py: one dict per mode plus the on/off ratios."""
    seconds = 3.0 if quick else 8.0
    results = {mode: run_mode(mode, seconds) for mode in ("off", "on", "adaptive")}
    off, on = results["off"], results["on"]
    results["ratios"] = {
        "goodput_on_over_off": round(on["goodput_rps"] / max(off["goodput_rps"], 0.1), 2),
        "p99_off_over_on": (
            round(off["ok_p99_ms"] / on["ok_p99_ms"], 2)
            if off["ok_p99_ms"] and on["ok_p99_ms"]
            else None
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", choices=("off", "on", "adaptive"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    results = run(args.quick)
    print(
        f"capacity {CAPACITY / SERVICE:.0f} req/s, offered {OVERLOAD:.0f}x, "
        f"client timeout {CLIENT_TIMEOUT}s"
    )
    for mode in ("off", "on", "adaptive"):
        print(f"{mode:>9}: {json.dumps(results[mode])}")
    print(f"   ratios: {json.dumps(results['ratios'])}")


if __name__ == "__main__":
    main()
