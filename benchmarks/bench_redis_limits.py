"""Distributed limit decisions on Redis: ours against `limits` and django-ratelimit.

Run: ``python benchmarks/bench_redis_limits.py [--quick]``

Starts its own throwaway ``redis-server`` on a free port (stopped by PID at the
end), then measures, side by side and interleaved in rounds (median of the
rounds reported), microseconds per decision for one and for three rules:

- floor: a raw redis-py ``GET`` and ``PING`` from the very client our limiter uses;
- ours: ``RedisLimiter.decide`` (one EVALSHA for all rules, sent through
  redis-py's public client API, ``execute_command``, on the same client as the
  GET) and the production path ``HybridLimiter.decide`` (the same plus the
  fallback breaker's bookkeeping and charging the admitted units to the local
  share);
- the same on the event loop (rows starting ``async:``): ``adecide`` of both
  against a ``redis.asyncio`` ``GET`` from a client built the same way, timed
  inside the loop; their "x GET" is to that async ``GET``;
- ``limits`` ``RedisStorage`` with the moving-window and sliding-window-counter
  strategies (one ``hit`` per rule);
- django-ratelimit ``is_ratelimited(increment=True)`` on a django-redis cache
  (one call per rule).

Round trips per decision are counted on the server: ``INFO commandstats``
deltas give every command Redis executed (including those a Lua script ran
inside Redis, which are no round trips), and a short ``MONITOR`` capture
tells which of them the client sent (lines not marked ``lua``); the client-sent
count per decision is the round-trip figure.  ``srv us`` is what one decision
costs inside Redis: ``INFO commandstats`` ``usec`` per call of ``EVALSHA`` (a
script's inner commands included), or of the command a contender sends most.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Op = Callable[[], Any]
AsyncOp = Callable[[], Awaitable[Any]]
ASYNC_FLOOR = "async: redis.asyncio GET (floor)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench_redis_limits: no redis-server on PATH")
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


def _time_op(op: Op, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - start) / n * 1e6


async def _atime_op(op: AsyncOp, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - start) / n * 1e6


def _commandstats(client: Any) -> dict[str, int]:
    return {k: v["calls"] for k, v in client.info("commandstats").items()}


def _usec(client: Any) -> dict[str, tuple[int, int]]:
    """``(calls, usec)`` per command, from ``INFO commandstats``."""
    return {k: (v["calls"], v["usec"]) for k, v in client.info("commandstats").items()}


def _server_usec(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> float:
    """Microseconds Redis spent per call of the command the contender sent most.

    EVALSHA when there is one (its figure includes the commands the script
    ran), else the most called command: what one request costs inside Redis.
    """
    deltas = {
        k: (c - before.get(k, (0, 0))[0], u - before.get(k, (0, 0))[1])
        for k, (c, u) in after.items()
        if k != "cmdstat_info"
    }
    deltas = {k: d for k, d in deltas.items() if d[0] > 0}
    if not deltas:
        return 0.0
    name = (
        "cmdstat_evalsha"
        if "cmdstat_evalsha" in deltas
        else max(deltas, key=lambda k: deltas[k][0])
    )
    calls, usec = deltas[name]
    return usec / calls


def _client_sent(port: int, op: Op, n: int) -> float:
    """Commands the client sent per call of ``op``, from a MONITOR capture."""
    mon = socket.create_connection(("127.0.0.1", port))
    mon.sendall(b"MONITOR\r\n")
    mon.recv(16)  # +OK
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            data = mon.recv(1 << 16)
            if not data:
                return
            chunks.append(data)
            if b"bench-monitor-end" in data:
                return

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(n):
        op()
    marker = socket.create_connection(("127.0.0.1", port))
    marker.sendall(b"ECHO bench-monitor-end\r\n")
    marker.recv(64)
    reader.join(timeout=10)
    marker.close()
    mon.close()
    lines = b"".join(chunks).splitlines()
    sent = [ln for ln in lines if ln.startswith(b"+") and b" lua]" not in ln]
    # Minus the marker ECHO itself.
    return (len(sent) - 1) / n


def _setup_django(url: str) -> Callable[[], Any]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=[],
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            USE_TZ=True,
        )
        django.setup()
    from django.test.utils import override_settings

    override = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "ratelimit": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url},
        },
        RATELIMIT_USE_CACHE="ratelimit",
    )
    override.enable()
    return override.disable


def _contenders(
    url: str,
) -> tuple[dict[str, Op], dict[str, AsyncOp], Callable[[], Awaitable[None]], Any]:
    from limits import RateLimitItemPerHour, storage, strategies

    from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
    from resilience_django.limiting.hybrid import HybridLimiter
    from resilience_django.limiting.local import LocalLimiter
    from resilience_django.limiting.redis import RedisLimiter
    from resilience_django.limiting.redis_conn import (
        RedisSettings,
        make_async_client,
        make_sync_client,
    )
    from resilience_django.units import Rate

    # A generous budget: this measures speed, not the fallback.
    settings = RedisSettings(url=url, socket_timeout=1.0, connect_timeout=1.0)
    client = make_sync_client(settings)
    ours = RedisLimiter(client, settings=settings)
    hybrid = HybridLimiter(RedisLimiter(client, settings=settings), LocalLimiter(), budget=1.0)
    big = Rate(10**9, 3600.0)
    one = (LimitCheck(Policy("r1", big, Algorithm.SLIDING_WINDOW), "ip:10.0.0.1"),)
    three = (
        *one,
        LimitCheck(Policy("r2", big, Algorithm.TOKEN_BUCKET), "ip:10.0.0.1"),
        LimitCheck(Policy("r3", big, Algorithm.GCRA), "ip:10.0.0.1"),
    )
    client.set("bench:get", "x")

    lstore = storage.RedisStorage(url)
    moving = strategies.MovingWindowRateLimiter(lstore)
    sliding = strategies.SlidingWindowCounterRateLimiter(lstore)
    items = [RateLimitItemPerHour(10**9, namespace=f"r{i}") for i in range(3)]

    undo = _setup_django(url)
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited

    request = RequestFactory().get("/")

    def rl(n: int) -> Op:
        groups = [f"g{i}" for i in range(n)]

        def op() -> None:
            for g in groups:
                is_ratelimited(request, group=g, key="ip", rate="1000000000/h", increment=True)

        return op

    ops: dict[str, Op] = {
        "redis-py GET (floor)": lambda: client.get("bench:get"),
        "redis-py PING": client.ping,
        "ours RedisLimiter, 1 rule": lambda: ours.decide(one),
        "ours RedisLimiter, 3 rules": lambda: ours.decide(three),
        "ours HybridLimiter, 1 rule": lambda: hybrid.decide(one),
        "ours HybridLimiter, 3 rules": lambda: hybrid.decide(three),
        "limits moving window, 1 rule": lambda: moving.hit(items[0], "10.0.0.1"),
        "limits moving window, 3 rules": lambda: [moving.hit(i, "10.0.0.1") for i in items],
        "limits sliding counter, 1 rule": lambda: sliding.hit(items[0], "10.0.0.1"),
        "limits sliding counter, 3 rules": lambda: [sliding.hit(i, "10.0.0.1") for i in items],
        "django-ratelimit django-redis, 1 rule": rl(1),
        "django-ratelimit django-redis, 3 rules": rl(3),
    }

    aclient = make_async_client(settings)
    aops: dict[str, AsyncOp] = {
        ASYNC_FLOOR: lambda: aclient.get("bench:get"),
        "async: ours RedisLimiter, 1 rule": lambda: ours.adecide(one),
        "async: ours RedisLimiter, 3 rules": lambda: ours.adecide(three),
        "async: ours HybridLimiter, 1 rule": lambda: hybrid.adecide(one),
        "async: ours HybridLimiter, 3 rules": lambda: hybrid.adecide(three),
    }

    async def close() -> None:
        await aclient.aclose()
        await hybrid.aclose()
        await ours.aclose()
        ours.close()
        undo()

    return ops, aops, close, client


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every contender; return µs per decision, ratios to GET and round trips."""
    # Many short interleaved rounds, so every contender sees the same noise
    # from a shared machine; the median of the rounds is reported, the best
    # round too (the least disturbed, closest to the real cost).
    n, rounds = (200, 6) if quick else (400, 15)
    server = _Server()
    # One loop for every async contender: each asyncio client belongs to it.
    loop = asyncio.new_event_loop()
    try:
        ops, aops, close, client = _contenders(server.url)
        for op in ops.values():  # warm up: scripts loaded, connections open
            _time_op(op, 50)
        for aop in aops.values():
            loop.run_until_complete(_atime_op(aop, 50))
        samples: dict[str, list[float]] = {name: [] for name in [*ops, *aops]}
        for _ in range(rounds):
            for name, op in ops.items():
                samples[name].append(_time_op(op, n))
            for name, aop in aops.items():
                samples[name].append(loop.run_until_complete(_atime_op(aop, n)))
        us = {name: statistics.median(v) for name, v in samples.items()}
        best = {name: min(v) for name, v in samples.items()}
        trips: dict[str, float] = {}
        executed: dict[str, float] = {}
        calib = 50
        server_calls = 500 if quick else 3000
        counted: dict[str, Op] = dict(ops)
        for name, aop in aops.items():
            counted[name] = lambda aop=aop: loop.run_until_complete(aop())
        server_us: dict[str, float] = {}
        for name, op in counted.items():
            before = _commandstats(client)
            for _ in range(calib):
                op()
            after = _commandstats(client)
            # The INFO call that read "before" is counted in "after"; take it off.
            executed[name] = (sum(after.values()) - sum(before.values()) - 1) / calib
            timed = _usec(client)
            for _ in range(server_calls):
                op()
            server_us[name] = _server_usec(timed, _usec(client))
            trips[name] = _client_sent(server.port, op, calib)
        loop.run_until_complete(close())
    finally:
        loop.close()
        server.stop()

    def floor_of(name: str) -> str:
        return ASYNC_FLOOR if name.startswith("async:") else "redis-py GET (floor)"

    return {
        "us_per_decision": us,
        "decisions_per_second": {name: 1e6 / v for name, v in us.items()},
        "ratio_to_get": {name: v / us[floor_of(name)] for name, v in us.items()},
        "best_us_per_decision": best,
        "best_ratio_to_get": {name: v / best[floor_of(name)] for name, v in best.items()},
        "round_trips_per_decision": trips,
        "redis_commands_per_decision": executed,
        "redis_usec_per_call": server_us,
        "iterations": n,
        "rounds": rounds,
    }


def main() -> None:
    quick = "--quick" in sys.argv
    result = run(quick)
    print(
        f"bench_redis_limits ({result['rounds']} interleaved rounds x {result['iterations']}; "
        "median of rounds, then best round)"
    )
    header = (
        f"{'contender':42} {'dec/s':>7} {'us/dec':>8} {'x GET':>6} {'best':>7} {'x GET':>6} "
        f"{'trips':>6} {'cmds':>6} {'srv us':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, us in result["us_per_decision"].items():
        print(
            f"{name:42} {1e6 / us:7.0f} {us:8.1f} {result['ratio_to_get'][name]:6.2f} "
            f"{result['best_us_per_decision'][name]:7.1f} {result['best_ratio_to_get'][name]:6.2f} "
            f"{result['round_trips_per_decision'][name]:6.2f} "
            f"{result['redis_commands_per_decision'][name]:6.2f} "
            f"{result['redis_usec_per_call'][name]:7.2f}"
        )
    print()
    print("a decision on the public-API path against a GET on the same client (median rounds):")
    for prefix in ("", "async: "):
        for n in ("1 rule", "3 rules"):
            name = f"{prefix}ours HybridLimiter, {n}"
            print(
                f"  {prefix or 'sync: '}{n:8} {result['ratio_to_get'][name]:.2f}x GET, "
                f"{result['round_trips_per_decision'][name]:.2f} round trips"
            )
    print("trips: commands the client sent per decision (MONITOR);")
    print("cmds: commands Redis executed per decision, scripts' inner calls too (commandstats)")
    print("srv us: usec_per_call inside Redis of EVALSHA (else of the command sent most)")


if __name__ == "__main__":
    main()
