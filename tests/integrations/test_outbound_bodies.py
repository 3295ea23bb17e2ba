"""Request bodies that cannot be sent twice, and answer bodies that trickle past the budget
(a real local HTTP server)."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from resilience_django import retry
from resilience_django.integrations import requests as ours
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport


class Server(BaseHTTPRequestHandler):
    """PUT: records the body, answers 503 the first time, 200 after."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def do_PUT(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Server.bodies.append(body)
        self.send_response(503 if len(Server.bodies) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    Server.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _policy() -> retry:
    return retry(attempts=3, backoff=0, budget=None)


def _chunks() -> Iterator[bytes]:
    yield b"hello "
    yield b"world"


class _Chunks:
    """An iterator that is not a generator: httpx cannot tell it was used up."""

    def __init__(self) -> None:
        self._parts = iter([b"hello ", b"world"])

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> bytes:
        return next(self._parts)


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", ours.ResilientAdapter(retry=_policy()))
    return session


@pytest.mark.parametrize("body", [_chunks, lambda: io.BytesIO(b"hello world")])
def test_requests_put_with_a_streamed_body_is_sent_once_not_again_empty(
    url: str, body: object
) -> None:
    with _session() as session:
        response = session.put(f"{url}/x", data=body(), timeout=5)  # type: ignore[operator]
    assert response.status_code == 503  # the one answer there was, unretried
    assert Server.bodies == [b"hello world"]


@pytest.mark.parametrize("body", [_chunks, _Chunks, lambda: io.BytesIO(b"hello world")])
def test_httpx_put_with_a_streamed_body_is_sent_once_not_again_empty(
    url: str, body: object
) -> None:
    with httpx.Client(transport=ResilientTransport(retry=_policy()), timeout=5) as client:
        response = client.put(f"{url}/x", content=body())  # type: ignore[operator]
    assert response.status_code == 503
    assert Server.bodies == [b"hello world"]


async def test_async_httpx_put_with_a_streamed_body_is_sent_once(url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    transport = AsyncResilientTransport(retry=_policy())
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        response = await client.put(f"{url}/x", content=chunks())
    assert response.status_code == 503
    assert Server.bodies == [b"hello world"]


def test_put_with_a_body_in_memory_is_still_retried(url: str) -> None:
    with _session() as session:
        assert session.put(f"{url}/x", data=b"hello world", timeout=5).status_code == 200
    with httpx.Client(transport=ResilientTransport(retry=_policy()), timeout=5) as client:
        assert client.put(f"{url}/x", content=b"hello world").status_code == 200
    assert Server.bodies == [b"hello world"] * 3


def test_requests_put_with_a_bytearray_body_is_retried(url: str) -> None:
    with _session() as session:
        response = session.put(f"{url}/x", data=bytearray(b"hello world"), timeout=5)
    assert response.status_code == 200
    assert Server.bodies == [b"hello world"] * 2  # the 503, then the retry
