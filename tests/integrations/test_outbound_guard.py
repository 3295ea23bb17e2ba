"""Transports compose deadline → retry → breaker → bulkhead → call, against a real flaky server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

import resilience_django
from resilience_django.breakers.registry import get_breaker
from resilience_django.breakers.state import CircuitOpen
from resilience_django.deadline import Deadline, _current
from resilience_django.integrations._outbound import BulkheadFull
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience_django.integrations.requests import ResilientAdapter
from resilience_django.shedding.bulkhead import Bulkhead
from tests.utils.waiting import wait_for


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 for the first `fail` requests of a path, then 200; records X-Timeout-Ms."""

    plan: dict[str, int] = {}
    seen: dict[str, list[str | None]] = {}
    lock = threading.Lock()
    release = threading.Event()  # a request to /held... is answered once it is set

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        with self.lock:
            self.seen.setdefault(path, []).append(self.headers.get("X-Timeout-Ms"))
            left = self.plan.get(path, 0)
            self.plan[path] = left - 1
        if path.startswith("/held"):
            self.release.wait(30)
        status = 503 if left > 0 else 200
        body = json.dumps({"status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _retry() -> object:
    return resilience_django.retry(attempts=3, backoff="1ms", max_backoff="5ms", budget=None)


def test_httpx_get_is_retried_until_it_succeeds_and_each_attempt_announces_less_budget(
    server: str,
) -> None:
    Flaky.plan["/retry-sync"] = 2
    token = _current.set(Deadline(5.0))
    try:
        with httpx.Client(transport=ResilientTransport(retry=_retry())) as client:  # type: ignore[arg-type]
            response = client.get(server + "/retry-sync")
    finally:
        _current.reset(token)
    assert response.status_code == 200
    sent = [int(v) for v in Flaky.seen["/retry-sync"] if v is not None]
    assert len(sent) == 3
    assert sent[0] >= sent[1] >= sent[2]


async def test_async_httpx_get_is_retried_until_it_succeeds(server: str) -> None:
    Flaky.plan["/retry-async"] = 1
    transport = AsyncResilientTransport(retry=_retry())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(server + "/retry-async")
    assert response.status_code == 200
    assert len(Flaky.seen["/retry-async"]) == 2


def test_post_is_not_retried_by_default(server: str) -> None:
    Flaky.plan["/post"] = 1
    with httpx.Client(transport=ResilientTransport(retry=_retry())) as client:  # type: ignore[arg-type]
        response = client.post(server + "/post")
    assert response.status_code == 503
    assert len(Flaky.seen["/post"]) == 1


def test_breaker_counts_5xx_and_then_refuses_calls_without_sending_them(server: str) -> None:
    name = "outbound-5xx"
    resilience_django_breaker = get_breaker(name)
    resilience_django_breaker.reset()
    Flaky.plan["/down"] = 100
    with httpx.Client(transport=ResilientTransport(breaker=name)) as client:
        for _ in range(5):  # the default failure_threshold
            assert client.get(server + "/down").status_code == 503
        sent_before = len(Flaky.seen["/down"])
        with pytest.raises(CircuitOpen) as info:
            client.get(server + "/down")
    assert info.value.retry_after > 0
    assert len(Flaky.seen["/down"]) == sent_before


def test_breaker_counts_connection_errors(server: str) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    s.close()
    name = "outbound-refused"
    get_breaker(name).reset()
    session = requests.Session()
    session.mount("http://", ResilientAdapter(breaker=name))
    for _ in range(5):
        with pytest.raises(requests.ConnectionError):
            session.get(dead, timeout=1)
    with pytest.raises(CircuitOpen):
        session.get(dead, timeout=1)


def test_retries_stop_once_the_breaker_opens(server: str) -> None:
    name = "outbound-retry-stop"
    breaker = get_breaker(name)
    breaker.reset()
    Flaky.plan["/retry-breaker"] = 100
    policy = resilience_django.retry(attempts=10, backoff="1ms", max_backoff="2ms", budget=None)
    transport = ResilientTransport(breaker=name, retry=policy)  # type: ignore[arg-type]
    with httpx.Client(transport=transport) as client:
        outcome: object
        try:
            outcome = client.get(server + "/retry-breaker").status_code
        except CircuitOpen as exc:
            outcome = exc
    # 5 failures open the breaker; the policy stops retrying there (not 10 attempts).
    assert len(Flaky.seen["/retry-breaker"]) == 5
    assert outcome == 503 or isinstance(outcome, CircuitOpen)
    assert breaker.state == "open"


def test_requests_adapter_retries_idempotent_calls(server: str) -> None:
    Flaky.plan["/req-retry"] = 2
    session = requests.Session()
    session.mount("http://", ResilientAdapter(retry=_retry()))  # type: ignore[arg-type]
    assert session.get(server + "/req-retry").status_code == 200
    assert len(Flaky.seen["/req-retry"]) == 3


def test_full_bulkhead_refuses_without_calling_and_without_blaming_the_breaker(
    server: str,
) -> None:
    bulkhead = Bulkhead("outbound-bh", 1, queue=0)
    name = "outbound-bh-breaker"
    get_breaker(name).reset()
    client = httpx.Client(transport=ResilientTransport(bulkhead=bulkhead, breaker=name))
    errors: list[BaseException] = []
    Flaky.release.clear()
    thread = threading.Thread(target=lambda: client.get(server + "/held-bh"))
    thread.start()
    # The first call holds the only slot until released: no race with the second.
    wait_for(lambda: Flaky.seen.get("/held-bh"), 30, "the first call reaches the server")
    try:
        client.get(server + "/held-bh")
    except BulkheadFull as exc:
        errors.append(exc)
    finally:
        Flaky.release.set()
    thread.join()
    client.close()
    assert len(errors) == 1
    assert len(Flaky.seen["/held-bh"]) == 1
    snapshot = get_breaker(name).snapshot()
    assert snapshot["calls"] == 1
    assert snapshot["failures"] == 0


def test_retry_budgets_are_per_dependency_not_shared_by_every_transport() -> None:
    from resilience_django.integrations._outbound import OutboundGuard

    policy = resilience_django.retry(attempts=3)
    by_breaker = OutboundGuard(breaker="pricing", retry=policy)
    by_host = OutboundGuard(retry=policy)
    assert by_breaker._retry_for("GET", "pricing.internal").target == "pricing"  # type: ignore[union-attr]
    a = by_host._retry_for("GET", "inventory.internal")
    b = by_host._retry_for("GET", "risk.internal")
    assert a is not None and b is not None
    assert (a.target, b.target) == ("inventory.internal", "risk.internal")
    assert by_host._retry_for("POST", "risk.internal") is None
    explicit = OutboundGuard(breaker="x", retry=resilience_django.retry(target="shared"))
    assert explicit._retry_for("GET", "h").target == "shared"  # type: ignore[union-attr]
