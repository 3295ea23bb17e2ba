"""Four OS processes hammering one distributed rule through one real Redis.

Token bucket and GCRA admit exactly the limit.  The sliding window's bound
(``algorithms.py``): any interval of ``period * 9/10`` admits at most the
limit; with a one-hour period the whole test fits in one such interval, so
it too must admit exactly the limit.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import RedisSettings, make_sync_client
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.redis

PROCESSES = 4
ATTEMPTS = 250
LIMIT = 300


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def _hammer(url: str, algorithm: str, go: Barrier, out: mp.Queue[int]) -> None:
    settings = RedisSettings(url=url, socket_timeout=5.0, connect_timeout=5.0)
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    check = LimitCheck(Policy("shared", Rate(LIMIT, 3600.0), Algorithm(algorithm)), "ip:shared")
    limiter.decide((LimitCheck(check.policy, "warm-up"),))
    go.wait(timeout=60)
    out.put(sum(limiter.decide((check,)).allowed for _ in range(ATTEMPTS)))
    limiter.close()


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_four_processes_admit_exactly_the_limit(server: RedisServer, algorithm: Algorithm) -> None:
    ctx = mp.get_context("spawn")
    # Every process connects first, then all start together.
    go = ctx.Barrier(PROCESSES + 1)
    out: mp.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(server.url, algorithm.value, go, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    go.wait(timeout=60)
    admitted = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    # Exactly the limit across all processes.  (How it is shared between them
    # depends on when the OS scheduled each one, so that is not asserted.)
    assert sum(admitted) == LIMIT, admitted
