"""Hostile X-Forwarded-For under a hop count, over real HTTP against a real uvicorn.

``TRUSTED_PROXIES: 1`` with no proxy in front is the misconfiguration an
attacker looks for: every request picks its own header.  A well-formed
address is still taken (that is what a hop count trusts, and why
``check --deploy`` warns about it), but junk and huge entries must not buy a
fresh key: the client is limited by its own address.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {
    "TRUSTED_PROXIES": 1,
    "LIMITS": [
        {"name": "junk-3m", "path": "/hello/", "key": "ip", "rate": "3/m"},
        {"name": "huge-3m", "path": "/budget/", "key": "ip", "rate": "3/m"},
        {"name": "honest-3m", "path": "/async-hello/", "key": "ip", "rate": "3/m"},
    ],
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]},
}
APPS = ["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]


@pytest.fixture(scope="module", params=APPS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    # uvicorn's own --proxy-headers trusts 127.0.0.1 by default and would
    # rewrite the peer from X-Forwarded-For before the app sees it; trusting
    # an address no test connects from leaves the header to TRUSTED_PROXIES.
    env = {"FORWARDED_ALLOW_IPS": "192.0.2.1"}
    with uvicorn_server(CONFIG, app=request.param, extra_env=env) as srv:
        yield srv


def _codes(server: Server, path: str, headers: list[dict[str, str]]) -> list[int]:
    with httpx.Client(timeout=10) as client:
        return [client.get(server.url + path, headers=h).status_code for h in headers]


def _bad_forwarded_for(server: Server) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/resilience/metrics/", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "resilience_bad_headers_total" and sample.labels == {
                "header": "x-forwarded-for"
            }:
                return sample.value
    return 0.0


def test_rotating_junk_forwarded_for_is_limited_by_the_peer(server: Server) -> None:
    before = _bad_forwarded_for(server)
    junk = [f"1.2.3.{random.randrange(256, 100_000)}", "unknown", "x, not-an-ip", "1.2.3.4:80"]
    codes = _codes(server, "/hello/", [{"X-Forwarded-For": j} for j in junk])
    assert codes == [200, 200, 200, 429]
    assert _bad_forwarded_for(server) >= before + 4


def test_huge_forwarded_for_entries_are_limited_by_the_peer_and_never_fail(
    server: Server,
) -> None:
    huge = [{"X-Forwarded-For": c * 10_000} for c in "a1b2"]
    assert _codes(server, "/budget/", huge) == [200, 200, 200, 429]
    assert server.process.poll() is None


def test_a_hop_count_still_takes_a_well_formed_address(server: Server) -> None:
    # The documented limit of a hop count: a well-formed entry is believed.
    # Written three ways, one address is one client.
    written = ("203.0.113.9", "6.6.6.6, 203.0.113.9", "::ffff:203.0.113.9")
    same = [{"X-Forwarded-For": a} for a in written]
    other = [{"X-Forwarded-For": "203.0.113.10"}]
    assert _codes(server, "/async-hello/", same + same[:1] + other) == [200, 200, 200, 429, 200]
