"""Streamed responses hold their bulkhead slot and run under the deadline, over a real uvicorn.

``tests.e2e.streaming_app`` streams chunks from a sync generator, an async
generator and a ``FileResponse``; each prefix has its own rules here:

* ``/stream/``: a bulkhead of one slot and no queue, the default 30 s budget;
* ``/cut/``: a 1 s budget;
* ``/events/``: a 1 s budget, but exempt from both (``EXEMPT_STREAMS`` and a
  rule with ``exempt_streams``).
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {
    "DEADLINE": {
        "ROUTES": {"/cut/": "1s", "/events/": "1s"},
        "EXEMPT_STREAMS": ["/events/"],
    },
    "SHEDDING": [
        {"name": "streams", "path": "/stream/", "max_concurrent": 1, "queue": 0},
        {"name": "events", "path": "/events/", "max_concurrent": 1, "exempt_streams": True},
    ],
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
}
KINDS = ["sync", "async", "file"]
CHUNK = 10  # bytes per chunk (tests.e2e.streaming_app)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.streaming_settings"}
    with uvicorn_server(CONFIG, extra_env=env) as srv:
        yield srv


def _get(url: str) -> tuple[int | str, bytes, float]:
    """Status (or the transport error), body and time to the body's end."""
    start = time.monotonic()
    try:
        response = httpx.get(url, timeout=10)
    except httpx.TransportError as exc:  # a cut body with a Content-Length ends the connection
        return type(exc).__name__, b"", time.monotonic() - start
    return response.status_code, response.content, time.monotonic() - start


def _counter(server: Server, name: str, route: str) -> float:
    text = httpx.get(server.url + "/resilience/metrics/", timeout=5).text
    match = re.search(rf'^{name}\{{route="{re.escape(route)}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_response_holds_its_slot_until_the_body_ends(server: Server, kind: str) -> None:
    # Four at once on a bulkhead of one: the first streams for 2.5 s and holds
    # the slot all along, so the other three are shed while it streams (2.5 s:
    # room for a loaded machine to be slow in sending the other three).
    url = f"{server.url}/stream/{kind}/?n=25&step=0.1"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(_get, [url] * 4))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 503, 503, 503], results
    body = next(body for status, body, _ in results if status == 200)
    assert len(body) == 25 * CHUNK
    # The slot came back when the body ended: the next request streams again.
    status, body, _ = _get(f"{server.url}/stream/{kind}/?n=2&step=0")
    assert (status, len(body)) == (200, 2 * CHUNK)


@pytest.mark.parametrize("kind", KINDS)
def test_the_deadline_cuts_a_streamed_body(server: Server, kind: str) -> None:
    before = _counter(server, "resilience_deadline_exceeded_total", "/cut/")
    status, body, elapsed = _get(f"{server.url}/cut/{kind}/?n=40&step=0.1")
    # A 4 s body under a 1 s budget: its status had gone out, its body ends
    # early (the bound leaves a loaded machine 1.5 s past the budget).
    assert elapsed < 2.5, (status, len(body), elapsed)
    assert len(body) < 20 * CHUNK
    # FileResponse declares its Content-Length: the short body ends the connection.
    assert status == (200 if kind != "file" else "RemoteProtocolError")
    # The server may count the cut just after the client saw the body end.
    wait_for(lambda: _counter(server, "resilience_deadline_exceeded_total", "/cut/") > before)
    assert _counter(server, "resilience_deadline_exceeded_total", "/cut/") == before + 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_exempt_route_streams_past_its_deadline_while_others_are_cut(
    server: Server, kind: str
) -> None:
    # The same 1.5 s body under the same 1 s budget, at the same time.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        exempt, bound = pool.map(
            _get, [f"{server.url}/{prefix}/{kind}/?n=15&step=0.1" for prefix in ("events", "cut")]
        )
    status, body, elapsed = exempt
    assert (status, len(body)) == (200, 15 * CHUNK)
    assert elapsed >= 1.4
    assert len(bound[1]) < 15 * CHUNK


def _open(client: httpx.Client, url: str) -> tuple[httpx.Response, Iterator[bytes]]:
    """Start a request and read its first chunk, leaving the rest (and the connection) open.

    The body iterator is returned to be kept: once collected, httpx closes the
    response, and the server sees a client that went away.
    """
    response = client.send(client.build_request("GET", url), stream=True)
    body = response.iter_raw()
    if response.status_code == 200:
        next(body)
    return response, body


def test_an_exempt_rule_gives_the_slot_back_when_the_view_returns(server: Server) -> None:
    # Long-lived (10 s) streams opened one after the other on bulkheads of one
    # slot: the exempt rule's slot came back as each view returned, the other's
    # is held by the first stream.
    with httpx.Client(timeout=10) as client:
        for prefix, expected in (("events", [200, 200, 200]), ("stream", [200, 503, 503])):
            opened = [_open(client, f"{server.url}/{prefix}/async/?n=100&step=0.1")
                      for _ in range(3)]  # fmt: skip
            assert [r.status_code for r, _ in opened] == expected, prefix
            for response, _ in opened:
                response.close()
    # The closed streams give their slot back before the next test needs it.
    wait_for(lambda: _inflight(server, "streams") == 0)


def test_a_client_that_goes_away_gives_the_slot_back(server: Server) -> None:
    # Async bodies only: under ASGI Django produces a sync body in full (in a
    # thread) before sending any of it, client or no client, and its slot
    # rightly stays taken while that work runs.
    url = f"{server.url}/stream/async/?n=300&step=0.1"  # a 30 s body
    with httpx.Client(timeout=10) as client:
        response, _body = _open(client, url)
        assert _get(url)[0] == 503  # held while it streams
        response.close()
        # Well before the 30 s body would have ended, the slot is free again.
        wait_for(lambda: _inflight(server, "streams") == 0, timeout=10)
    assert _get(f"{server.url}/stream/async/?n=1&step=0")[0] == 200


def _inflight(server: Server, rule: str) -> float:
    return _counter(server, "resilience_inflight_requests", rule)
