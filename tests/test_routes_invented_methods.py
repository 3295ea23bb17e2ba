"""A method a client invents (``FOO``, ``GET `` with a space, 10 KB of letters) counts
against every rule that names methods: a plain function view serves it like GET, so it
must not be a way around a ``methods: ["GET"]`` limit (docs/limits.md, "Which requests a
rule matches").  Through the Django middleware and the ASGI fast path alike."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import Client, override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from resilience_django.routes import RouteMatcher
from tests.utils.asgi import call_asgi, http_scope

GET_TWICE: dict[str, Any] = {
    "RELOAD_INTERVAL": None,
    "LIMITS": [
        {"name": "get-2m", "path": "/hello/", "methods": ["GET"], "key": "ip", "rate": "2/m"},
    ],
}
INVENTED = ["FOO", "get2", "X" * 10_000, "GET ", "PROPFIND"]


@pytest.mark.parametrize("method", INVENTED, ids=["FOO", "get2", "10KB", "space", "PROPFIND"])
@override_settings(RESILIENCE=GET_TWICE)
def test_an_invented_method_is_limited_by_a_get_rule_through_the_middleware(method: str) -> None:
    client = Client()
    assert [client.get("/hello/").status_code for _ in range(2)] == [200, 200]
    assert client.generic(method, "/hello/").status_code == 429


@pytest.mark.parametrize("method", INVENTED, ids=["FOO", "get2", "10KB", "space", "PROPFIND"])
async def test_an_invented_method_is_limited_by_a_get_rule_on_the_fast_path(method: str) -> None:
    with override_settings(MIDDLEWARE=[], RESILIENCE=GET_TWICE):
        app = ResilienceASGIMiddleware(ASGIHandler())
        for _ in range(2):
            assert (await call_asgi(app, http_scope("/hello/")))[0]["status"] == 200
        sent = await call_asgi(app, http_scope("/hello/") | {"method": method.lower()})
        assert sent[0]["status"] == 429


def test_standard_methods_match_only_the_rules_that_list_them() -> None:
    post = RouteMatcher(methods=frozenset({"POST"}))
    assert post.matches("POST", "/") and not post.matches("GET", "/")
    assert not post.matches("DELETE", "/") and not RouteMatcher(methods={"GET"}).matches(
        "POST", "/"
    )
    assert RouteMatcher(methods={"GET"}).matches("HEAD", "/")
    # A method the rule lists by name matches; one outside the standard set matches them all.
    assert RouteMatcher(methods={"PROPFIND"}).matches("PROPFIND", "/")
    assert not RouteMatcher(methods={"PROPFIND"}).matches("GET", "/")
    assert post.matches("PURGE", "/") and post.matches("GET ", "/")
