"""A half-open route breaker over a real uvicorn: a trial whose client went away still runs in
its thread, so it must keep its slot (``/work/`` of ``tests.e2e.streaming_app`` works ``s``
seconds and counts how many of its bodies run at once)."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

# A slow call is a failure, so one slow /work/ opens the breaker; then one trial at a time.
CONFIG = {
    "BREAKERS": {
        "work": {
            "path": "/work/",
            "failure_threshold": 1,
            "slow_call": "100ms",
            "open_for": "2s",
            "half_open_calls": 1,
            "close_ratio": 1.0,
        }
    }
}


def _stats(server: Server) -> dict[str, Any]:
    return httpx.get(server.url + "/work-stats/", timeout=10).json()  # type: ignore[no-any-return]


def test_a_sync_trial_whose_client_left_keeps_its_slot_until_its_thread_ends() -> None:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.streaming_settings"}
    with uvicorn_server(CONFIG, extra_env=env) as server:
        assert httpx.get(server.url + "/work/?s=0.3", timeout=30).status_code == 200
        opened = time.monotonic()
        assert httpx.get(server.url + "/work/?s=0", timeout=30).status_code == 503
        wait_for(lambda: time.monotonic() - opened > 2.2, timeout=10, what="open_for elapsed")
        port = int(server.url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port))
        try:
            client.sendall(b"GET /work/?s=8 HTTP/1.1\r\nHost: test\r\n\r\n")  # the one trial
            wait_for(lambda: _stats(server)["running"] == 1, timeout=30, what="the trial runs")
        finally:
            client.close()  # the client leaves; the trial's view works on for 8 s
        # While it does, every other call must be refused: one trial at a time.
        codes: list[int] = []
        while _stats(server)["running"] == 1 and 200 not in codes:
            codes.append(httpx.get(server.url + "/work/?s=0", timeout=30).status_code)
        stats = _stats(server)
        assert stats["most"] <= 1, (codes, stats)
        # Refused while the trial ran; only the last call may have found it just ended.
        assert codes.count(503) >= 1 and set(codes[:-1]) <= {503}, codes
