"""Deadlines under WSGI, through a real gunicorn with sync workers.

A view whose outbound call the budget cuts short answers 504 from the
deadline, not a 500 with the client library's timeout and a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.downstream import Downstream, slow_downstream
from tests.e2e.server import Server
from tests.e2e.wsgi_server import gunicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def downstream() -> Iterator[Downstream]:
    with slow_downstream() as service:
        yield service


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with gunicorn_server(
        {"BREAKERS": {"downstream": {"failure_threshold": 3}}},
        settings="tests.e2e.outbound_settings",
    ) as srv:
        yield srv


@pytest.mark.parametrize("view", ["sync-httpx", "sync-requests", "async-httpx"])
def test_an_outbound_call_cut_short_by_the_deadline_is_a_504_not_a_500(
    server: Server, downstream: Downstream, view: str
) -> None:
    started = time.monotonic()
    response = httpx.get(
        f"{server.url}/{view}/",
        params={"url": downstream.url + "?s=5"},
        headers={"X-Timeout-Ms": "800", "Accept": "application/json"},
        timeout=10.0,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["error"] == "deadline_exceeded"
    # Answered when the budget ran out, not when the 5 s downstream did (the
    # bound leaves a loaded machine room to be slow).
    assert 0.75 <= elapsed < 3.0
    assert "Traceback" not in server.output()
    assert "ReadTimeout" not in server.output()
