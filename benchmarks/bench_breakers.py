"""Per-call overhead of a closed circuit breaker, ours against its peers, side by side.

Measures, in one process and one run:

* sync: µs added per call around a no-op function (decorated - bare), best of N;
* async: the same for ``await`` of a no-op coroutine;
* contention: throughput with two threads sharing one breaker, relative to one thread
  (1.00 = no loss), and for ours whether any call went uncounted.

Peers: pybreaker, circuitbreaker, aiobreaker, purgatory (a peer that is not
installed is skipped and reported).  Run ``python benchmarks/bench_breakers.py``
(``--quick`` for a shorter run); ``run(quick)`` returns the figures.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SyncFn = Callable[[], Any]
AsyncFn = Callable[[], Awaitable[Any]]


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        # The fleet thread is off so its once-a-second wake-ups do not add noise.
        settings.configure(INSTALLED_APPS=[], RESILIENCE={"FLEET": {"ENABLED": False}})
        django.setup()


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def _peers_sync() -> tuple[dict[str, SyncFn], list[str]]:
    from resilience_django.breakers.api import breaker
    from resilience_django.breakers.registry import registry

    fns: dict[str, SyncFn] = {"resilience_django": breaker("bench-sync")(noop)}
    # The same breaker with slow-call detection on: two clock reads per call instead of one.
    settings_slow = registry.get("bench-slow")
    from resilience_django.breakers.policy import BreakerPolicy

    settings_slow.configure(BreakerPolicy(slow_call=5.0))
    fns["resilience_django (slow_call on)"] = breaker("bench-slow")(noop)
    skipped = []
    try:
        import pybreaker

        fns["pybreaker"] = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(noop)
    except ImportError:
        skipped.append("pybreaker")
    try:
        from circuitbreaker import circuit

        fns["circuitbreaker"] = circuit(failure_threshold=5, recovery_timeout=30)(noop)
    except ImportError:
        skipped.append("circuitbreaker")
    try:
        from aiobreaker import CircuitBreaker

        fns["aiobreaker"] = CircuitBreaker(fail_max=5)(noop)
    except ImportError:
        skipped.append("aiobreaker")
    try:
        from purgatory import SyncCircuitBreakerFactory

        fns["purgatory"] = SyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)("bench")(
            noop
        )
    except ImportError:
        skipped.append("purgatory")
    return fns, skipped


def _peers_async() -> dict[str, AsyncFn]:
    from resilience_django.breakers.api import breaker

    fns: dict[str, AsyncFn] = {"resilience_django": breaker("bench-async")(anoop)}
    try:
        from circuitbreaker import circuit

        fns["circuitbreaker"] = circuit(failure_threshold=5, recovery_timeout=30)(anoop)
    except ImportError:
        pass
    try:
        from aiobreaker import CircuitBreaker

        fns["aiobreaker"] = CircuitBreaker(fail_max=5)(anoop)
    except ImportError:
        pass
    try:
        from purgatory import AsyncCircuitBreakerFactory

        fns["purgatory"] = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)("bench")(
            anoop
        )
    except ImportError:
        pass
    return fns


def _once(fn: SyncFn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


def _per_call(fns: dict[str, SyncFn], n: int, repeat: int) -> dict[str, float]:
    """Seconds per call, best of ``repeat``; peers take turns so that noise from the
    other users of this machine falls on all of them alike."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], _once(fn, n))
    return {name: t / n for name, t in best.items()}


def _per_call_async(fns: dict[str, AsyncFn], n: int, repeat: int) -> dict[str, float]:
    async def loop(fn: AsyncFn) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        return time.perf_counter() - start

    best = dict.fromkeys(fns, math.inf)
    ev = asyncio.new_event_loop()
    try:
        for _ in range(repeat):
            for name, fn in fns.items():
                best[name] = min(best[name], ev.run_until_complete(loop(fn)))
    finally:
        ev.close()
    return {name: t / n for name, t in best.items()}


def _throughput(fn: SyncFn, total: int, threads: int) -> float:
    per = total // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per):
            fn()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every peer; returns ``{"sync_us": ..., "async_us": ..., "contention": ...}``."""
    _setup_django()
    n, repeat = (30_000, 3) if quick else (100_000, 5)
    sync_fns, skipped = _peers_sync()
    async_fns = _peers_async()
    timed = _per_call({"(bare)": noop, **sync_fns}, n, repeat)
    base = timed.pop("(bare)")
    sync_us = {name: (t - base) * 1e6 for name, t in timed.items()}
    atimed = _per_call_async({"(bare)": anoop, **async_fns}, n, repeat)
    abase = atimed.pop("(bare)")
    async_us = {name: (t - abase) * 1e6 for name, t in atimed.items()}
    from resilience_django.breakers.registry import get_breaker

    ours = get_breaker("bench-sync")
    before = ours._phase.window.lifetime()[0] + ours._done[0]
    total = n * 2
    contenders = {name: fn for name, fn in sync_fns.items() if not name.endswith(")")}
    one = dict.fromkeys(contenders, 0.0)
    two = dict.fromkeys(contenders, 0.0)
    for _ in range(3):  # interleaved, best of 3: noise from other users hits all alike
        for name, fn in contenders.items():
            one[name] = max(one[name], _throughput(fn, total, 1))
            two[name] = max(two[name], _throughput(fn, total, 2))
    contention = {name: two[name] / one[name] for name in contenders}
    after = ours._phase.window.lifetime()[0] + ours._done[0]
    lost = 6 * total - (after - before)
    return {
        "sync_us": sync_us,
        "async_us": async_us,
        "async_minus_sync_us": async_us["resilience_django"] - sync_us["resilience_django"],
        "contention_2_threads": contention,
        "ours_uncounted_calls": lost,
        "ours_calls_made_threaded": 6 * total,
        "skipped": skipped,
        "calls_per_measure": n,
    }


def main() -> None:
    quick = "--quick" in sys.argv
    started = time.perf_counter()
    r = run(quick)
    ours_sync = r["sync_us"]["resilience_django"]
    print(f"Closed breaker around a no-op, {r['calls_per_measure']} calls, best of N")
    print(f"{'peer':34} {'sync µs/call':>13} {'x ours':>7} {'async µs/call':>14} {'x ours':>7}")
    ours_async = r["async_us"]["resilience_django"]
    for name, us in r["sync_us"].items():
        a = r["async_us"].get(name)
        a_txt = f"{a:14.3f} {a / ours_async:7.2f}" if a is not None else f"{'-':>14} {'-':>7}"
        print(f"{name:34} {us:13.3f} {us / ours_sync:7.2f} {a_txt}")
    print(f"async - sync (ours): {r['async_minus_sync_us']:+.3f} µs")
    print("Two threads sharing one breaker: throughput relative to one thread (1.00 = no loss)")
    for name, ratio in r["contention_2_threads"].items():
        print(f"  {name:32} {ratio:5.2f}")
    print(
        f"ours: {r['ours_uncounted_calls']} of {r['ours_calls_made_threaded']} threaded calls "
        "went uncounted (lock-free counter)"
    )
    if r["skipped"]:
        print("skipped (not installed):", ", ".join(r["skipped"]))
    print(f"total {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
