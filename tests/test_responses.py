"""Custom ``RESPONSE_HANDLERS`` get whole seconds for ``Retry-After``, and the exact value."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from resilience_django import responses
from resilience_django.limiting.decision import LimitCheck, Policy, RuleOutcome
from resilience_django.limiting.headers import build_headers
from resilience_django.units import Rate

received: list[dict[str, Any]] = []


def flexible_handler(request: Any, **details: Any) -> HttpResponse:
    received.append(details)
    return HttpResponse(status=429, headers={"Retry-After": str(details["retry_after"])})


def fixed_handler(request: Any, *, rules: Any, retry_after: Any, headers: Any) -> HttpResponse:
    """Written before ``retry_after_exact`` existed: it must keep working."""
    received.append({"retry_after": retry_after})
    return HttpResponse(status=418)


def named_handler(
    request: Any, *, reason: str, name: str, retry_after: int, retry_after_exact: float
) -> HttpResponse:
    received.append({"retry_after": retry_after, "retry_after_exact": retry_after_exact})
    return HttpResponse(status=503)


def _handlers(**kinds: str) -> override_settings:
    return override_settings(
        RESILIENCE={"RESPONSE_HANDLERS": {k: f"tests.test_responses.{v}" for k, v in kinds.items()}}
    )


def test_handlers_get_retry_after_in_whole_seconds_rounded_up_and_the_exact_value() -> None:
    received.clear()
    with _handlers(rate_limited="flexible_handler"):
        response = responses.rate_limited(
            RequestFactory().get("/"), rules=("api",), retry_after=54.875
        )
    assert response["Retry-After"] == "55"
    assert received[0]["retry_after"] == 55
    assert isinstance(received[0]["retry_after"], int)
    assert received[0]["retry_after_exact"] == 54.875


def test_a_fraction_of_a_second_is_one_whole_second() -> None:
    received.clear()
    with _handlers(unavailable="named_handler"):
        responses.unavailable(
            RequestFactory().get("/"), reason="shed", name="queue_full", retry_after=0.2
        )
    assert received == [{"retry_after": 1, "retry_after_exact": 0.2}]


def test_handlers_without_the_new_keyword_keep_working() -> None:
    received.clear()
    with _handlers(rate_limited="fixed_handler"):
        request = RequestFactory().get("/")
        response = responses.rate_limited(request, rules=("api",), retry_after=2.5)
    assert response.status_code == 418  # the handler's answer, not the built-in fallback
    assert received == [{"retry_after": 3}]


def test_whole_seconds_never_rounds_down() -> None:
    assert [responses.whole_seconds(s) for s in (0.0, 0.001, 1.0, 1.0001, 54.875)] == [
        0,
        1,
        1,
        2,
        55,
    ]


def test_add_headers_sets_what_the_public_api_would() -> None:
    pairs = build_headers(
        [RuleOutcome(LimitCheck(Policy("a", Rate(10, 1.0)), "k"), True, 3, 0.4, 0.0)]
    )
    ours, public = HttpResponse(b"x"), HttpResponse(b"x")
    ours["ratelimit"] = "stale"  # replaced whatever its spelling
    responses.add_headers(ours, pairs)
    for name, value in pairs:
        public[name] = value
    assert sorted(ours.items()) == sorted(public.items())
    assert ours["ratelimit-policy"] == '"a";q=10;w=1'
    assert ours.headers["RateLimit"] == '"a";r=3;t=1'
