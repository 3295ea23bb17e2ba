"""Sync views abandoned at their deadline keep their bulkhead slot, over a real uvicorn.

``/work/`` (``tests.e2e.streaming_app``) is a sync view that works 6 s in small
steps, making no query that the deadline could stop it at, and records how
many of its bodies run at once.  Its budget is 200 ms and its bulkhead holds 4.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {
    "DEADLINE": {"ROUTES": {"/work/": "200ms"}},
    "SHEDDING": [{"name": "work", "path": "/work/", "max_concurrent": 4, "queue": 0}],
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.streaming_settings"}
    with uvicorn_server(CONFIG, extra_env=env) as srv:
        yield srv


def _stats(server: Server, **params: str) -> dict[str, Any]:
    return httpx.get(server.url + "/work-stats/", params=params, timeout=5).json()  # type: ignore[no-any-return]


def _abandoned(server: Server) -> float:
    text = httpx.get(server.url + "/resilience/metrics/", timeout=5).text
    match = re.search(r'^resilience_abandoned_views\{route="/work/"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _wave(server: Server, size: int) -> list[int]:
    def get(_: int) -> int:
        return httpx.get(server.url + "/work/?s=6", timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        return sorted(pool.map(get, range(size)))


def test_abandoned_sync_views_keep_their_slots_until_their_threads_end(server: Server) -> None:
    wait_for(lambda: _stats(server)["running"] == 0, timeout=20)
    baseline = _stats(server, reset="1")["threads"]
    # A first wave fills the bulkhead; its views are answered 504 at 200 ms and
    # work on for 6 s (long enough for a loaded machine to send the next waves
    # and read the gauge while they do).  The next waves come while they do:
    # their slots are still taken, so they are shed instead of starting more
    # threads.
    first = _wave(server, 8)
    assert first == [503] * 4 + [504] * 4
    later = _wave(server, 6) + _wave(server, 6)
    assert set(later) == {503}, later
    stats = _stats(server)
    assert stats["bodies"] == 4  # of 20 requests, only the first four ever ran
    assert stats["most"] <= 4
    # Four abandoned threads (and asgiref's joiner of each): not one per request.
    assert stats["threads"] <= baseline + 2 * 4 + 2, (baseline, stats)
    assert _abandoned(server) == 4  # they still run (for 6 s), counted
    # When the abandoned views end, their slots come back.
    wait_for(lambda: _abandoned(server) == 0, timeout=20)
    assert _stats(server)["running"] == 0
    assert httpx.get(server.url + "/work/?s=0.01", timeout=5).status_code == 200
