"""An answer a retry drops is closed unread: a broken server's huge 503 body is never buffered
(real local server; a pool of one connection, so a dropped answer must free it)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from resilience_django import retry
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience_django.integrations.requests import ResilientAdapter
from tests.utils.waiting import wait_for

BODY = 16 * 1024 * 1024  # what the server would send; a small send buffer holds 64 KiB of it
CHUNK = b"x" * 65536


class Huge(BaseHTTPRequestHandler):
    """A 503 with a 16 MiB body, written until the client hangs up; records the bytes sent."""

    protocol_version = "HTTP/1.1"
    sent: list[int] = []

    def do_GET(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.send_response(503)
        self.send_header("Content-Length", str(BODY))
        self.end_headers()
        written = 0
        try:
            while written < BODY:
                self.wfile.write(CHUNK)
                written += len(CHUNK)
        except OSError:  # the client closed the connection
            self.close_connection = True
        finally:
            Huge.sent.append(written)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    Huge.sent = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Huge)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _policy() -> retry:
    return retry(attempts=3, backoff=0, budget=None)


def _no_attempt_read_to_its_end() -> None:
    wait_for(lambda: len(Huge.sent) == 3, timeout=30, what="three attempts ended")
    assert max(Huge.sent) < BODY // 2, Huge.sent  # none was read to its end


def test_httpx_stream_drops_retried_answers_unread(url: str) -> None:
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = ResilientTransport(inner, retry=_policy())
    with (
        httpx.Client(transport=transport, timeout=30) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 503
    _no_attempt_read_to_its_end()


async def test_async_httpx_stream_drops_retried_answers_unread(url: str) -> None:
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = AsyncResilientTransport(inner, retry=_policy())
    async with (
        httpx.AsyncClient(transport=transport, timeout=30) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 503
    _no_attempt_read_to_its_end()


def test_requests_stream_drops_retried_answers_unread(url: str) -> None:
    with requests.Session() as session:
        session.mount("http://", ResilientAdapter(pool_maxsize=1, pool_block=True, retry=_policy()))
        with session.get(url, stream=True, timeout=30) as response:
            assert response.status_code == 503
    _no_attempt_read_to_its_end()


class Judging(Exception):
    pass


def test_an_answer_dropped_by_an_error_frees_its_connection(url: str) -> None:
    seen: list[int] = []

    def retry_on_result(response: object) -> bool:
        seen.append(1)
        if len(seen) == 2:
            raise Judging  # the second answer is dropped by an error: the caller never sees it
        return len(seen) == 1

    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    policy = retry(attempts=3, backoff=0, budget=None, retry_on_result=retry_on_result)
    transport = ResilientTransport(inner, retry=policy)
    with httpx.Client(transport=transport, timeout=httpx.Timeout(30, pool=5)) as client:
        with pytest.raises(Judging):
            client.get(url)
        # The pool's one connection is free again (a leaked one: PoolTimeout).
        with client.stream("GET", url) as response:
            assert response.status_code == 503
    _no_attempt_read_to_its_end()
