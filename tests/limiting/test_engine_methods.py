"""Methods in any case: a GET rule limits ``get`` and ``HEAD`` too, in every adapter path."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from resilience_django.clock import ManualClock
from resilience_django.limiting.engine import NO_LIMITS, LimitEngine
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import parse_limit_rules
from resilience_django.view_limits.decorator import limit, process_limiter

rf = RequestFactory()


def make(*specs: dict[str, Any]) -> LimitEngine:
    rules, errors = parse_limit_rules(list(specs))
    assert not errors
    return LimitEngine(rules, LocalLimiter(clock=ManualClock()))


def scope(method: str, path: str = "/api/x") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "client": ("198.51.100.4", 1)}


async def test_lowercase_method_in_the_scope_is_limited_like_uppercase() -> None:
    engine = make({"name": "g", "path": "/api/", "methods": ["GET"], "rate": "3/m"})
    answers = [await engine.decide_scope(scope(m)) for m in ("get", "GET", "Get", "get")]
    assert [a is not None and a.allowed for a in answers] == [True, True, True, False]
    assert answers[-1] is not None and answers[-1].rejected == ("g",)


async def test_head_in_the_scope_counts_against_a_get_rule() -> None:
    engine = make({"name": "g", "path": "/api/", "methods": ["get"], "rate": "1/m"})
    first = await engine.decide_scope(scope("head"))
    assert first is not None and first.allowed and first is not NO_LIMITS
    second = await engine.decide_scope(scope("GET"))
    assert second is not None and not second.allowed


def test_head_request_counts_against_a_get_rule_in_the_middleware_path() -> None:
    engine = make({"name": "g", "path": "/api/", "methods": ["GET"], "rate": "1/m"})
    assert engine.decide("HEAD", "/api/x", rf.head("/api/x")).allowed
    assert not engine.decide("GET", "/api/x", rf.get("/api/x")).allowed


def test_a_post_rule_leaves_head_and_get_alone() -> None:
    engine = make({"name": "p", "methods": ["post"], "rate": "1/m"})
    assert engine.decide("HEAD", "/", rf.head("/")) is NO_LIMITS
    assert engine.decide("POST", "/", rf.post("/")).allowed
    assert not engine.decide("POST", "/", rf.post("/")).allowed


def test_limit_decorator_listing_lowercase_get_limits_head_too() -> None:
    process_limiter().clear()

    @limit("1/m", key="ip", methods=["get"], name="deco-get")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert view(rf.head("/")).status_code == 200
    assert view(rf.get("/")).status_code == 429
    assert view(rf.post("/")).status_code == 200  # not a GET rule's business
