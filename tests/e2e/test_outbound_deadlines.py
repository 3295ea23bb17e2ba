"""A caller's tight budget is not the dependency's fault, through a real uvicorn.

Views call a healthy downstream that answers in 300 ms, through the breaker
``downstream`` (``failure_threshold: 3``).  Requests whose budget is shorter
than that end in 504, and must not open the breaker for the callers that do
have the time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.downstream import Downstream, slow_downstream
from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {"BREAKERS": {"downstream": {"failure_threshold": 3}}}


@pytest.fixture(scope="module")
def downstream() -> Iterator[Downstream]:
    with slow_downstream() as service:
        yield service


@pytest.fixture
def server() -> Iterator[Server]:
    # A fresh server per test: each starts with a closed breaker.
    with uvicorn_server(
        CONFIG, extra_env={"DJANGO_SETTINGS_MODULE": "tests.e2e.outbound_settings"}
    ) as srv:
        yield srv


def _wait_finished(client: httpx.Client, server: Server, count: int) -> dict[str, object]:
    """Wait until ``count`` outbound calls have ended (and so been judged by the breaker)."""
    deadline = time.monotonic() + 10
    while True:
        seen: dict[str, object] = client.get(server.url + "/finished/").json()
        if int(seen["finished"]) >= count or time.monotonic() > deadline:  # type: ignore[call-overload]
            return seen
        time.sleep(0.05)


@pytest.mark.parametrize("view", ["sync-httpx", "sync-requests", "async-httpx"])
def test_tight_caller_budgets_get_504_and_do_not_open_the_breaker(
    server: Server, downstream: Downstream, view: str
) -> None:
    url = f"{server.url}/{view}/"
    params = {"url": downstream.url}
    before = downstream.arrivals
    with httpx.Client(timeout=10.0) as client:
        # Four calls must reach the dependency and run into their budget there: were
        # they failures, three would open the breaker. On a loaded machine a call can
        # spend its 100 ms before it gets there, so send until four have (at most 20).
        sent = 0
        while sent < 4 or (downstream.arrivals - before < 4 and sent < 20):
            tight = client.get(url, params=params, headers={"X-Timeout-Ms": "100"})
            assert tight.status_code == 504
            sent += 1
        seen = _wait_finished(client, server, sent)
        assert downstream.arrivals - before >= 4
        assert seen == {"finished": sent, "breaker": "closed"}
        roomy = client.get(url, params=params, headers={"X-Timeout-Ms": "600"})
        assert roomy.status_code == 200, roomy.text
        assert roomy.text == "ok"
    assert "Traceback" not in server.output()
