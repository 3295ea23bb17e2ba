"""Threads busy with Python code delay the thread that reads Redis's reply (it waits for
the GIL), the sync analogue of a busy event loop: that is not Redis's latency, and must
not send decisions to local limits or hold them there (docs/fallback.md#busy-workers).

A real, healthy redis-server; the CPU load is this process's own threads.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.redis

CHECK = (LimitCheck(Policy("busy", Rate(10**9, 3600.0), Algorithm.GCRA), "ip:1"),)
BUSY_THREADS = 4


@pytest.fixture
def hybrid() -> Iterator[HybridLimiter]:
    server = RedisServer().start()
    # The defaults: a 50 ms budget, 3 failures trip, 2 good probes recover.
    limiter = build_hybrid_limiter({"URL": server.url}, local=LocalLimiter())
    try:
        yield limiter
    finally:
        limiter.close()
        server.stop()


@pytest.fixture
def busy() -> Iterator[None]:
    """Threads that run Python code without pause, as views rendering or serializing do."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(BUSY_THREADS)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_sync_decisions_stay_on_a_healthy_redis_while_other_threads_are_busy(
    hybrid: HybridLimiter, busy: None
) -> None:
    backends = Counter(hybrid.decide(CHECK).backend for _ in range(300))
    # Measured before the fix: 3 decisions of 300 on Redis, the rest local.
    assert backends["redis"] >= 270, backends
    assert not hybrid.fallback_active


def test_probes_of_a_healthy_redis_succeed_while_other_threads_are_busy(
    hybrid: HybridLimiter, busy: None
) -> None:
    assert [hybrid.probe() for _ in range(10)] == [True] * 10
    assert hybrid.health()["consecutive_failures"] == 0
