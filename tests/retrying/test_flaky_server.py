"""Retries against a real HTTP server on 127.0.0.1 that fails its first requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from resilience_django import deadline
from resilience_django.clock import ManualClock
from resilience_django.retrying.budget import RetryBudget
from resilience_django.retrying.policy import retry


class FlakyServer:
    """Answers 503 + ``Retry-After`` to the first ``failures`` requests, then 200."""

    def __init__(self, failures: int, retry_after: str = "1") -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.arrivals.append(time.monotonic())
                    failing = len(server.arrivals) <= server.failures
                body = b"busy" if failing else b"ok"
                self.send_response(503 if failing else 200)
                if failing:
                    self.send_header("Retry-After", server.retry_after)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> FlakyServer:
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def test_retries_a_flaky_server_honouring_retry_after(client: httpx.Client) -> None:
    with FlakyServer(failures=2, retry_after="1") as server:
        fetch = retry(attempts=3, backoff="10ms", max_backoff="2s", budget=None)(client.get)
        response = fetch(server.url)
    assert response.status_code == 200 and response.text == "ok"
    assert len(server.arrivals) == 3
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # never sooner than Retry-After


def test_attempts_run_out_and_the_last_503_is_returned(client: httpx.Client) -> None:
    with FlakyServer(failures=10, retry_after="0") as server:
        fetch = retry(attempts=3, backoff="10ms", max_backoff="50ms", budget=None)(client.get)
        response = fetch(server.url)
    assert response.status_code == 503
    assert len(server.arrivals) == 3
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    # Full jitter: each wait is at most min(cap, base * 2**n), plus request overhead.
    assert all(gap < 0.05 * 2**i + 0.25 for i, gap in enumerate(gaps)), gaps


def test_an_exhausted_budget_stops_retries_against_the_server(client: httpx.Client) -> None:
    budget = RetryBudget(0.0, min_per_second=0.2, ttl=10, clock=ManualClock())  # two retries
    fetch = retry(attempts=5, backoff="1ms", max_backoff="5ms", budget=budget)(client.get)
    with FlakyServer(failures=100, retry_after="0") as server:
        assert fetch(server.url).status_code == 503
        assert fetch(server.url).status_code == 503
    assert len(server.arrivals) == 3 + 1  # first call: 1 + 2 retries; second: no retry


def test_no_retry_is_slept_past_the_request_deadline(client: httpx.Client) -> None:
    with FlakyServer(failures=10, retry_after="1") as server:

        @deadline.deadline("400ms")
        def handler() -> httpx.Response:
            fetch = retry(attempts=3, backoff="10ms", max_backoff="2s", budget=None)
            return fetch(client.get)(server.url)

        started = time.monotonic()
        response = handler()
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert len(server.arrivals) == 1  # Retry-After 1 s does not fit in the 400 ms budget
    assert elapsed < 0.4


async def test_async_client_retries_the_flaky_server() -> None:
    with FlakyServer(failures=1, retry_after="0") as server:
        async with httpx.AsyncClient(timeout=5.0) as client:
            fetch = retry(attempts=3, backoff="10ms", max_backoff="50ms", budget=None)(client.get)
            response = await fetch(server.url)
    assert response.status_code == 200
    assert len(server.arrivals) == 2
