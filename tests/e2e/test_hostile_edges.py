"""Hostile request lines and deadline headers against a real uvicorn, sent raw as an
attacker would: an invented method, another spelling of a limited path and a budget
header sent twice get no way around a rule, through the Django middleware alone and
with the ASGI fast path in front."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {
    "DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/budget/": "20s"}},
    "LIMITS": [
        {"name": "get-2m", "path": "/hello/", "methods": ["GET"], "key": "ip", "rate": "2/m"},
    ],
}
APPS = ["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]


@pytest.fixture(params=APPS, ids=["middleware", "asgi-fastpath"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=request.param) as srv:
        yield srv


def raw(server: Server, method: str, path: str, *headers: str) -> tuple[int, bytes]:
    """Send the request line and headers exactly as written; the status and the body."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    request = "\r\n".join([*lines, "Content-Length: 0", "Connection: close", "", ""])
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_invented_methods_count_against_a_get_rule(server: Server) -> None:
    assert [raw(server, "GET", "/hello/")[0] for _ in range(2)] == [200, 200]
    for method in ("FOO", "get2", "PROPFIND", "X" * 8_000):
        assert raw(server, method, "/hello/")[0] == 429, method[:10]


def test_other_spellings_of_a_limited_path_share_its_counter(server: Server) -> None:
    codes = [raw(server, "GET", p)[0] for p in ("/hello/", "/he%6Clo/", "/%68%65%6c%6c%6f/")]
    assert codes == [200, 200, 429]
    # Spellings Django does not route to the view: 404 (429 under the prefix), never a 500.
    for path in ("//hello/", "/hello//", "/x/../hello/", "/hello/%FF%FE", "/" + "a" * 8_000):
        assert raw(server, "GET", path)[0] in (404, 429), path[:20]


def test_the_tighter_of_two_timeout_headers_wins(server: Server) -> None:
    for first, second in (("5000", "900"), ("900", "5000"), ("soon", "900")):
        status, body = raw(server, "GET", "/budget/", f"X-Timeout-Ms: {first}",
                           f"x-timeout-ms: {second}")  # fmt: skip
        assert status == 200, body
        assert 0 < json.loads(body)["remaining"] <= 0.9, (first, second)
