"""httpx and requests carry the remaining budget downstream, and refuse calls with none left."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from resilience_django.clock import ManualClock
from resilience_django.deadline import Deadline, DeadlineExceeded, _current
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience_django.integrations.requests import ResilientAdapter


class _Echo(BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        body = json.dumps({"timeout": self.headers.get("X-Timeout-Ms")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def budget_2s() -> Iterator[Deadline]:
    deadline = Deadline(2.0)
    token = _current.set(deadline)
    yield deadline
    _current.reset(token)


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", ResilientAdapter(margin=0.05))
    return session


def _spent_ms(deadline: Deadline) -> float:
    import time

    return (time.monotonic() - deadline.started_at) * 1000


def test_httpx_sends_remaining_budget_minus_margin(echo_url: str, budget_2s: Deadline) -> None:
    with httpx.Client(transport=ResilientTransport(margin=0.05)) as client:
        sent = int(client.get(echo_url).json()["timeout"])
    # Between 2 s - 50 ms margin - whatever the call itself took, and that minus nothing.
    assert 1950 - _spent_ms(budget_2s) - 1 <= sent <= 1950


async def test_async_httpx_sends_remaining_budget(echo_url: str, budget_2s: Deadline) -> None:
    async with httpx.AsyncClient(transport=AsyncResilientTransport(margin=0.05)) as client:
        sent = int((await client.get(echo_url)).json()["timeout"])
    assert 1950 - _spent_ms(budget_2s) - 1 <= sent <= 1950


def test_requests_sends_remaining_budget(echo_url: str, budget_2s: Deadline) -> None:
    sent = int(_session().get(echo_url).json()["timeout"])
    assert 1950 - _spent_ms(budget_2s) - 1 <= sent <= 1950


def test_no_header_outside_a_request(echo_url: str) -> None:
    with httpx.Client(transport=ResilientTransport()) as client:
        assert client.get(echo_url).json()["timeout"] is None
    assert _session().get(echo_url).json()["timeout"] is None


def test_calls_with_no_budget_left_are_refused_before_they_start(echo_url: str) -> None:
    clock = ManualClock()
    token = _current.set(Deadline(0.1, clock=clock))
    clock.advance(0.2)
    before = _Echo.calls
    try:
        with (
            httpx.Client(transport=ResilientTransport()) as client,
            pytest.raises(DeadlineExceeded),
        ):
            client.get(echo_url)
        with pytest.raises(DeadlineExceeded):
            _session().get(echo_url)
    finally:
        _current.reset(token)
    assert _Echo.calls == before


def test_httpx_read_timeout_is_capped_at_the_budget() -> None:
    # A server that accepts and never answers: the call must end at our budget, not httpx's 5 s.
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    token = _current.set(Deadline(0.3))
    start = time.monotonic()
    try:
        with (
            httpx.Client(transport=ResilientTransport(margin=0.0)) as client,
            pytest.raises(httpx.TimeoutException),
        ):
            client.get(url, timeout=5.0)
    finally:
        _current.reset(token)
        listener.close()
    assert time.monotonic() - start < 0.6
