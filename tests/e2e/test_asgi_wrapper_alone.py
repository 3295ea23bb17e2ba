"""``ResilienceASGIMiddleware`` with no ``ResilienceMiddleware`` behind it, over a real uvicorn.

The wrapper alone enforces the deadline: it must answer at the deadline, not
when the app is done, and the app's late messages must go nowhere quietly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = {
    "DEADLINE": {
        "ROUTES": {"/work/": "1s", "/cut/": "1s", "/events/": "1s"},
        "EXEMPT_STREAMS": ["/events/"],
    },
    "LIMITS": [{"name": "ready-3m", "path": "/ready/", "key": "ip", "rate": "3/m"}],
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.wrapper_only_settings"}
    with uvicorn_server(CONFIG, app="tests.e2e.asgi_fastpath:application", extra_env=env) as srv:
        yield srv


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.get(url, timeout=10)
    return response, time.monotonic() - start


def test_a_slow_sync_view_gets_its_504_at_the_deadline_and_nothing_is_logged_but_the_warning(
    server: Server,
) -> None:
    response, elapsed = _timed_get(server.url + "/work/?s=3")
    assert response.status_code == 504
    assert elapsed < 2.5  # a 3 s view under a 1 s budget
    # The abandoned view works on; once it has ended (and tried to answer), the
    # log says what was documented and nothing else.
    wait_for(lambda: httpx.get(server.url + "/work-stats/").json()["running"] == 0, timeout=10)
    assert httpx.get(server.url + "/work/?s=0.01").status_code == 200  # and the app still serves
    log = server.output()
    assert "Gateway Timeout: GET /work/ (route /work/" in log
    assert "Task exception was never retrieved" not in log
    assert "Unexpected ASGI message" not in log
    assert "Traceback" not in log


def test_an_async_stream_is_cut_at_the_deadline_unless_its_route_is_exempt(
    server: Server,
) -> None:
    response, elapsed = _timed_get(server.url + "/cut/async/?n=40&step=0.1")
    assert response.status_code == 200
    assert len(response.content) < 200
    assert elapsed < 2.5  # a 4 s body under a 1 s budget (room for a loaded machine)
    response, elapsed = _timed_get(server.url + "/events/async/?n=20&step=0.1")
    assert (response.status_code, len(response.content)) == (200, 200)
    assert elapsed >= 1.9


def test_the_wrapper_alone_limits_and_says_so_in_its_headers(server: Server) -> None:
    # The start-up probe also asked for /ready/: count from what the headers say is left.
    answers = [httpx.get(server.url + "/ready/", timeout=5) for _ in range(5)]
    statuses = [a.status_code for a in answers]
    assert 429 in statuses and statuses == sorted(statuses), statuses
    # No Django middleware to write them: the wrapper adds its decision's headers, once.
    for answer in answers:
        assert answer.headers.get_list("RateLimit-Policy") == ['"ready-3m";q=3;w=60']
        assert len(answer.headers.get_list("RateLimit")) == 1
    left = [int(a.headers["RateLimit"].split(";")[1].removeprefix("r=")) for a in answers]
    assert left[statuses.index(429) :] == [0] * statuses.count(429)
    admitted = left[: statuses.count(200)]
    assert admitted == list(range(admitted[0], -1, -1))[: len(admitted)], left
