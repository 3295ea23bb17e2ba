"""Random, hostile request lines and headers against both entry points: never a 500.

Clients are untrusted (docs/security.md): whatever method, path and headers a
client sends, the middleware answers with the view's answer or one of its own
documented refusals, and never with a server error. Each example goes through
the whole Django stack twice: the pure ASGI wrapper in front of Django's ASGI
handler (the fast path decides first), and Django's own handler with only
``ResilienceMiddleware``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience_django.asgi import ResilienceASGIMiddleware

pytestmark = pytest.mark.django_db(transaction=True)

# Rate limits high enough that a 429 is never the point; the keys are what hostile
# headers reach (the forwarded address, an API-key header, the peer address).
HOSTILE_SETTINGS: dict[str, Any] = {
    "DEADLINE": {"DEFAULT": "5s", "ROUTES": {"/budget/": "2s"}},
    "TRUSTED_PROXIES": 1,
    "RELOAD_INTERVAL": None,
    "LIMITS": [
        {"name": "by-ip", "path": "/", "key": "ip", "rate": "100000/s"},
        {"name": "by-key", "path": "/hello/", "methods": ["GET", "POST"],
         "key": "header:X-Api-Key", "rate": "100000/s"},
        {"name": "by-user-or-ip", "path": "/budget/", "key": "user_or_ip",
         "rate": "100000/s", "algorithm": "gcra"},
    ],
    "SHEDDING": [
        {"name": "bulk", "path": "/hello/", "max_concurrent": 50, "queue": 5,
         "max_wait": "50ms", "critical_header": "X-Critical"},
    ],
}  # fmt: skip

# The views answer 200; Django answers 4xx (a CSRF 403, a 404, a bad request); the
# package answers 429, 503 (shed) or 504 (a spent budget). Any other 5xx is a bug.
OURS_5XX = {503, 504}

HEADER_NAMES = [
    "grpc-timeout", "x-timeout-ms", "x-forwarded-for", "x-api-key", "x-critical",
    "x-real-ip", "forwarded", "accept", "content-length", "content-type", "cookie",
    "authorization",
]  # fmt: skip
# Latin-1 text, as an HTTP field value can carry, from empty to far past any key bound.
field_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=64),
    st.sampled_from(
        ["", "0", "-1", "1e309", "nan", "99999999999999999999", "250m", "1H", "9" * 400,
         "1.2.3.4", "::ffff:10.0.0.1", "1.2.3.4, 10.0.0.1", ",,,", "300.1.1.1",
         "fe80::1%eth0", "x" * 10_000]
    ),
)  # fmt: skip
header_names = st.one_of(
    st.sampled_from(HEADER_NAMES), st.from_regex(r"[a-z-]{1,20}", fullmatch=True)
)
headers = st.lists(st.tuples(header_names, field_values), max_size=8)
methods = st.one_of(
    st.sampled_from(["GET", "get", "Get", "HEAD", "head", "POST", "post", "OPTIONS", "PATCH"]),
    st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True),
)
paths = st.one_of(
    st.sampled_from(["/hello/", "/budget/", "/async-hello/", "/nope/", "/HELLO/", "//hello/"]),
    st.from_regex(r"/[A-Za-z0-9/%._~-]{0,40}", fullmatch=True),
)


def _scope(method: str, path: str, raw_headers: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw_headers],
    }  # fmt: skip


async def _status(app: Any, scope: dict[str, Any]) -> int:
    sent: list[dict[str, Any]] = []
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=methods, path=paths, raw_headers=headers)
def test_hostile_requests_never_get_a_server_error(
    method: str, path: str, raw_headers: list[tuple[str, str]]
) -> None:
    scope = _scope(method, path, raw_headers)
    with override_settings(RESILIENCE=HOSTILE_SETTINGS):
        django_app = ASGIHandler()
        for app in (ResilienceASGIMiddleware(django_app), django_app):
            status = asyncio.run(_status(app, dict(scope)))
            assert status == 200 or 400 <= status < 500 or status in OURS_5XX, (
                status, method, path, raw_headers,
            )  # fmt: skip


@pytest.mark.parametrize("default", [None, "30s"])
def test_a_bad_header_is_counted_once_behind_the_wrapper(default: str | None) -> None:
    # The wrapper reads the budget headers first; the middleware behind it reuses its
    # answer, "no budget" included, rather than reading (and counting) them again.
    from prometheus_client import REGISTRY

    def count() -> float:
        labels = {"header": "x-timeout-ms"}
        return REGISTRY.get_sample_value("resilience_bad_headers_total", labels) or 0.0

    scope = _scope("GET", "/", [("x-timeout-ms", "soon")])
    with override_settings(
        MIDDLEWARE=["resilience_django.middleware.ResilienceMiddleware"],
        RESILIENCE={"DEADLINE": {"DEFAULT": default}},
    ):
        app = ResilienceASGIMiddleware(ASGIHandler())
        before = count()
        asyncio.run(_status(app, scope))
    assert count() == before + 1
