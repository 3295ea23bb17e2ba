"""Local limits over real HTTP against a real uvicorn, with and without the ASGI fast path."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {
    "LIMITS": [
        {"name": "hello-10m", "path": "/hello/", "key": "ip", "rate": "10/m"},
        {
            "name": "budget-shadow",
            "path": "/budget/",
            "key": "ip",
            "rate": "10/m",
            "mode": "shadow",
        },
        {"name": "outer-5m", "path": "/limited-hello/", "key": "ip", "rate": "5/m"},
    ],
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
}
APPS = ["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]


@pytest.fixture(params=APPS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=request.param) as srv:
        yield srv


def _scrape_rejections(server: Server, rule: str, reason: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/resilience/metrics/", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "resilience_requests_rejected_total" and sample.labels == {
                "rule": rule,
                "reason": reason,
            }:
                return sample.value
    return 0.0


def test_30_quick_requests_to_a_10_per_minute_rule_admit_exactly_10(server: Server) -> None:
    with httpx.Client(timeout=5) as client:
        answers = [client.get(server.url + "/hello/") for _ in range(30)]
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 10
    assert codes.count(429) == 20
    assert codes[:10] == [200] * 10
    rejected = answers[-1]
    assert int(rejected.headers["Retry-After"]) >= 1
    assert rejected.headers["RateLimit-Policy"] == '"hello-10m";q=10;w=60'
    assert rejected.headers["RateLimit"].startswith('"hello-10m";r=0;t=')
    assert answers[0].headers["RateLimit"].startswith('"hello-10m";r=9;t=')
    # One line of each, whichever layer wrote them (behind the ASGI wrapper its own decision
    # goes out as bytes, and the Django middleware must not add a second copy).
    for answer in (answers[0], rejected):
        assert answer.headers.get_list("RateLimit-Policy") == ['"hello-10m";q=10;w=60']
        assert len(answer.headers.get_list("RateLimit")) == 1


def test_shadow_mode_lets_all_30_through_and_still_reports(server: Server) -> None:
    with httpx.Client(timeout=5) as client:
        answers = [client.get(server.url + "/budget/") for _ in range(30)]
    assert [a.status_code for a in answers] == [200] * 30
    assert answers[-1].headers["RateLimit"].startswith('"budget-shadow";r=0;')
    assert _scrape_rejections(server, "budget-shadow", "shadow") == 20
    assert _scrape_rejections(server, "hello-10m", "rate_limited") == 0


def test_a_view_with_its_own_limit_answers_one_line_of_each_header(server: Server) -> None:
    # The middleware's rule is decided on arrival (by the ASGI wrapper when it is there); the
    # view's @limit decision is merged into it, on both paths: one line of each header, naming
    # both rules while the view runs, only the outer one once it refuses on arrival.
    with httpx.Client(timeout=5) as client:
        answers = [client.get(server.url + "/limited-hello/") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    both = ['"outer-5m";q=5;w=60, "view-own";q=1000;w=60']
    for answer in answers:
        expected = both if answer.status_code == 200 else ['"outer-5m";q=5;w=60']
        assert answer.headers.get_list("RateLimit-Policy") == expected
        assert len(answer.headers.get_list("RateLimit")) == 1
