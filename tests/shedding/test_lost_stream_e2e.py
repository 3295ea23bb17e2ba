"""A streamed response Django loses on a client's disconnect gives its slot back, over a real
uvicorn (``tests.shedding.lost_stream_app`` says how the response gets lost)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {"SHEDDING": [{"name": "stream", "path": "/stream/", "max_concurrent": 1}]}


def test_a_streamed_answer_lost_on_disconnect_does_not_keep_its_slot(tmp_path: Path) -> None:
    marker = tmp_path / "in-log-hop"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.shedding.lost_stream_settings",
        "LOST_STREAM_MARKER": str(marker),
    }
    with uvicorn_server(CONFIG, extra_env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port))
        try:
            client.sendall(b"GET /stream/ HTTP/1.1\r\nHost: test\r\n\r\n")
            wait_for(marker.exists, timeout=30, what="the answer reached Django's log hop")
        finally:
            client.close()  # the client leaves while the answer holds the only slot

        def state() -> dict[str, int]:
            answer: dict[str, int] = httpx.get(server.url + "/state/", timeout=10).json()
            return answer

        # Before the fix the slot stayed taken for good, and the route answered 503
        # to everyone; now it comes back when the lost response is collected.
        wait_for(lambda: state()["inflight"] == 0, timeout=60, what="the lost slot came back")
        answer = httpx.get(server.url + "/stream/", timeout=10)
        assert answer.status_code == 502, server.output()
        assert answer.text == "upstream failed\n"
        assert state()["inflight"] == 0
