"""Method-restricted limits against a real uvicorn, with raw requests as clients send them.

A client picks the case of its method: ``get`` must count against a rule
that lists ``GET``, through the Django middleware alone and with the ASGI
fast path in front (which sees the method before Django upper-cases it).
Django serves ``HEAD`` with the GET view, so a ``GET`` rule covers it too.
httpx upper-cases methods, so the lowercase ones go out on a raw socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {
    "LIMITS": [
        {"name": "get-3m", "path": "/hello/", "methods": ["GET"], "key": "ip", "rate": "3/m"},
        {"name": "post-3m", "path": "/budget/", "methods": ["post"], "key": "ip", "rate": "3/m"},
    ],
}
APPS = ["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]


@pytest.fixture(params=APPS, ids=["middleware", "asgi-fastpath"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=request.param) as srv:
        yield srv


def raw_status(server: Server, method: str, path: str) -> int:
    """Send ``method`` exactly as written and return the response's status code."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    status_line = received.split(b"\r\n", 1)[0].decode("latin-1")
    return int(status_line.split(" ")[1])


def test_lowercase_method_is_limited_like_uppercase(server: Server) -> None:
    codes = [raw_status(server, "get", "/hello/") for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_mixed_case_methods_share_one_counter(server: Server) -> None:
    codes = [raw_status(server, m, "/hello/") for m in ("GET", "get", "Get", "gEt")]
    assert codes == [200, 200, 200, 429]


def test_lowercase_method_in_a_rule_matches_uppercase_requests(server: Server) -> None:
    codes = [raw_status(server, m, "/budget/") for m in ("POST", "post", "POST", "Post")]
    # The view answers POST without a CSRF token with 403: the limit comes first.
    assert 429 not in codes[:3] and codes[3] == 429
    # The rule lists POST only: GET is not limited by it.
    assert raw_status(server, "get", "/budget/") == 200


def test_a_get_rule_also_limits_head(server: Server) -> None:
    with httpx.Client(timeout=10) as client:
        codes = [client.head(server.url + "/hello/").status_code for _ in range(3)]
        codes.append(client.get(server.url + "/hello/").status_code)
    assert codes == [200, 200, 200, 429]
    assert raw_status(server, "head", "/hello/") == 429
