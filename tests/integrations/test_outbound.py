"""httpx and requests carry the remaining budget downstream, and refuse calls with none left."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import get_breaker
from resilience_django.breakers.state import Breaker
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


async def test_async_httpx_reads_a_body_that_is_both_sync_and_async(budget_2s: Deadline) -> None:
    # httpx.MockTransport answers with such a body; under a deadline it once failed an assert.
    inner = httpx.MockTransport(lambda request: httpx.Response(200, content=b"hi"))
    transport = AsyncResilientTransport(transport=inner)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("http://downstream.test/")).text == "hi"


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

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    # Built before the clock starts: building a client (its SSL context) is slow on a
    # loaded machine, and not the call under test.
    client = httpx.Client(transport=ResilientTransport(margin=0.0))
    token = _current.set(Deadline(0.3))
    start = time.monotonic()
    try:
        with client, pytest.raises(httpx.TimeoutException):
            client.get(url, timeout=5.0)
    finally:
        _current.reset(token)
        listener.close()
    # The budget plus slack for a loaded machine, far short of httpx's 5 s.
    assert time.monotonic() - start < 1.0


# -- a timeout the budget cut short is the caller's, not the dependency's ---------------


class _Slow(BaseHTTPRequestHandler):
    """A healthy dependency that answers every request after 300 ms."""

    arrivals = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            type(self).arrivals += 1
        time.sleep(0.3)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@contextmanager
def _within(seconds: float) -> Iterator[Deadline]:
    deadline = Deadline(seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


# Four calls must reach the dependency and run into their budget there
# (were they failures, three would open the breaker). On a loaded machine a call can
# spend its 100 ms before it gets there, so the tests send until four have (at most 20).


def _breaker(name: str) -> Breaker:
    breaker = get_breaker(name)
    breaker.configure(BreakerPolicy(failure_threshold=3))
    breaker.reset()
    return breaker


def test_httpx_timeouts_cut_short_by_tight_budgets_leave_the_breaker_closed(
    slow_url: str,
) -> None:
    breaker = _breaker("cut-httpx")
    transport = ResilientTransport(margin=0.01, breaker="cut-httpx")
    with httpx.Client(transport=transport, timeout=5.0) as client:
        before = _Slow.arrivals
        sent = 0
        while sent < 4 or (_Slow.arrivals - before < 4 and sent < 20):  # note above _breaker
            with _within(0.1), pytest.raises(DeadlineExceeded) as info:
                client.get(slow_url)
            # Still the httpx exception it replaces, which stays its cause.
            assert isinstance(info.value, httpx.TimeoutException)
            assert isinstance(info.value.__cause__, httpx.TimeoutException)
            sent += 1
        assert _Slow.arrivals - before >= 4
        assert breaker.state == "closed"
        with _within(0.6):
            assert client.get(slow_url).text == "ok"


def test_httpx_timeouts_of_the_clients_own_still_open_the_breaker(slow_url: str) -> None:
    breaker = _breaker("own-httpx")
    transport = ResilientTransport(margin=0.01, breaker="own-httpx")
    with httpx.Client(transport=transport) as client:
        for _ in range(3):
            with _within(5.0), pytest.raises(httpx.ReadTimeout) as info:
                client.get(slow_url, timeout=0.1)  # tighter than the budget: its own
            assert not isinstance(info.value, DeadlineExceeded)
        assert breaker.state == "open"


async def test_async_httpx_timeouts_cut_short_by_tight_budgets_leave_the_breaker_closed(
    slow_url: str,
) -> None:
    breaker = _breaker("cut-httpx-async")
    transport = AsyncResilientTransport(margin=0.01, breaker="cut-httpx-async")
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        for _ in range(4):
            with _within(0.1), pytest.raises(DeadlineExceeded) as info:
                await client.get(slow_url)
            assert isinstance(info.value, httpx.ReadTimeout)
        assert breaker.state == "closed"
        with _within(0.6):
            assert (await client.get(slow_url)).text == "ok"
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout) as own:
                await client.get(slow_url, timeout=0.1)  # outside any request: its own
            assert not isinstance(own.value, DeadlineExceeded)
        assert breaker.state == "open"


def test_requests_timeouts_cut_short_by_tight_budgets_leave_the_breaker_closed(
    slow_url: str,
) -> None:
    breaker = _breaker("cut-requests")
    session = requests.Session()
    session.mount("http://", ResilientAdapter(margin=0.01, breaker="cut-requests"))
    before = _Slow.arrivals
    sent = 0
    while sent < 4 or (_Slow.arrivals - before < 4 and sent < 20):  # note above _breaker
        with _within(0.1), pytest.raises(DeadlineExceeded) as info:
            session.get(slow_url, timeout=5.0)
        assert isinstance(info.value, requests.exceptions.Timeout)
        assert isinstance(info.value.__cause__, requests.exceptions.Timeout)
        sent += 1
    assert _Slow.arrivals - before >= 4
    assert breaker.state == "closed"
    with _within(0.6):
        assert session.get(slow_url).text == "ok"
    for _ in range(3):
        with _within(5.0), pytest.raises(requests.exceptions.ReadTimeout) as own:
            session.get(slow_url, timeout=(1.0, 0.1))  # its own read timeout is tighter
        assert not isinstance(own.value, DeadlineExceeded)
    assert breaker.state == "open"


def test_a_body_that_stalls_past_the_budget_raises_deadline_exceeded() -> None:
    # Headers at once, then a body that never comes: the read timeout fires
    # while the client reads the body, after the transport returned.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

    done = threading.Event()

    def answer_headers_only() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        done.wait(30)  # the rest never comes while the client waits, however slow it is
        conn.close()

    threading.Thread(target=answer_headers_only, daemon=True).start()
    try:
        with (
            httpx.Client(transport=ResilientTransport(margin=0.0)) as client,
            _within(0.2),
            pytest.raises(DeadlineExceeded) as info,
        ):
            client.get(url, timeout=5.0)
        assert isinstance(info.value, httpx.ReadTimeout)
    finally:
        done.set()
        listener.close()


@pytest.mark.parametrize("header", [("grpc-timeout", "99999999H"), ("X-Timeout-Ms", "9999999999")])
def test_calls_with_no_timeout_of_their_own_under_the_longest_caller_budget_are_made(
    echo_url: str, header: tuple[str, str]
) -> None:
    from resilience_django.deadline_policy import DeadlinePolicy, DeadlineSettings

    # No route budget: the caller's header is the whole budget, years of it
    # (grpc-timeout), past what a socket timeout can hold.
    policy = DeadlinePolicy(DeadlineSettings(default=None))
    name, value = header
    deadline = policy.start("GET", "/", {"HTTP_" + name.upper().replace("-", "_"): value})
    assert deadline is not None
    token = _current.set(deadline)
    try:
        with httpx.Client(transport=ResilientTransport(), timeout=None) as client:
            assert client.get(echo_url).status_code == 200
        assert _session().get(echo_url).status_code == 200
    finally:
        _current.reset(token)


@pytest.mark.parametrize("timeout", [{"connect": 5, "read": 5}, {"total": 5}, {"read": 0.5}])
def test_requests_call_with_a_urllib3_timeout_is_made_under_a_budget(
    echo_url: str, budget_2s: Deadline, timeout: dict[str, float]
) -> None:
    import urllib3

    # requests takes a urllib3 Timeout as well as a number or a pair.
    response = _session().get(echo_url, timeout=urllib3.Timeout(**timeout))
    assert response.status_code == 200
    assert 0 < int(response.json()["timeout"]) < 2000


@contextmanager
def _dribbling_server() -> Iterator[str]:
    """Answers at once, then its 40-byte body a byte every 100 ms: no single read waits
    long, so no per-read timeout fires, yet the body takes 4 s."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
                for _ in range(40):
                    time.sleep(0.1)
                    conn.sendall(b"x")
            except OSError:
                pass  # the client gave up: what the test wants

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        listener.close()


def test_a_body_that_trickles_past_the_budget_raises_deadline_exceeded() -> None:
    start = time.monotonic()
    with (
        _dribbling_server() as url,
        httpx.Client(transport=ResilientTransport(margin=0.0)) as client,
        _within(0.5),
        pytest.raises(DeadlineExceeded) as info,
    ):
        client.get(url)
    assert isinstance(info.value, httpx.ReadTimeout)
    assert time.monotonic() - start < 2.5  # the whole body would take 4 s


async def test_an_async_body_that_trickles_past_the_budget_raises_deadline_exceeded() -> None:
    start = time.monotonic()
    with _dribbling_server() as url, _within(0.5), pytest.raises(DeadlineExceeded) as info:
        async with httpx.AsyncClient(transport=AsyncResilientTransport(margin=0.0)) as client:
            await client.get(url)
    assert isinstance(info.value, httpx.ReadTimeout)
    assert time.monotonic() - start < 2.5
