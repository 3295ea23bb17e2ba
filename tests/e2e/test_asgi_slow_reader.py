"""The ASGI wrapper alone cuts a streamed body at its deadline while a chunk is still on
its way to a client that reads slowly (the server holds the app in ``send``): the body
must still end cleanly, not be dropped mid-response by the server."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {
    "DEADLINE": {"ROUTES": {"/cut/": "1s"}},
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.wrapper_only_settings"}
    with uvicorn_server(CONFIG, app="tests.e2e.asgi_fastpath:application", extra_env=env) as srv:
        yield srv


def _cuts(server: Server) -> float:
    text = httpx.get(server.url + "/resilience/metrics", timeout=5).text
    found = re.search(r'resilience_deadline_exceeded_total\{route="/cut/"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_body_cut_while_a_chunk_waits_for_a_slow_client_still_ends_cleanly(
    server: Server,
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    client = socket.socket()
    # A small window: the server's buffers fill and its send() waits for the client.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.settimeout(20)
    try:
        # A body of 10-byte chunks far longer than the 1 s budget allows.
        client.sendall(b"GET /cut/async/?n=5000000&step=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read nothing until the wrapper has cut the body at its deadline.
        wait_for(lambda: _cuts(server) >= 1, timeout=20, what="the body cut at its deadline")
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = client.recv(65536)
            if not data:
                break  # the server closed the connection mid-body
            received += data
    finally:
        client.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert received.endswith(b"\r\n0\r\n\r\n"), received[-40:]
    assert "returned without completing response" not in server.output()
