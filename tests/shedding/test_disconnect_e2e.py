"""A sync view whose client went away keeps its bulkhead slot until its thread ends, over a
real uvicorn (``/work/`` of ``tests.e2e.streaming_app`` works ``s`` seconds and counts how
many of its bodies run at once)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {"SHEDDING": [{"name": "work", "path": "/work/", "max_concurrent": 2, "queue": 0}]}


def _stats(server: Server) -> dict[str, Any]:
    return httpx.get(server.url + "/work-stats/", timeout=10).json()  # type: ignore[no-any-return]


def test_sync_views_whose_clients_left_keep_their_slots_until_their_threads_end() -> None:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.streaming_settings"}
    with uvicorn_server(CONFIG, extra_env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for client in clients:
            client.sendall(b"GET /work/?s=8 HTTP/1.1\r\nHost: test\r\n\r\n")
        wait_for(lambda: _stats(server)["running"] == 2, timeout=30, what="both views run")
        for client in clients:
            client.close()  # both clients leave; their views work on for 8 s
        # Until the views end, every new request must find both slots taken.  Before the
        # fix, once Django had cancelled the requests, the next one ran beside them.
        codes: list[int] = []
        while _stats(server)["running"] == 2 and 200 not in codes:
            codes.append(httpx.get(server.url + "/work/?s=0.01", timeout=30).status_code)
        stats = _stats(server)
        assert stats["most"] <= 2, (codes, stats)
        # Shed while both ran; only the last request may have found a view just ended.
        assert codes.count(503) >= 1 and set(codes[:-1]) <= {503}, codes
