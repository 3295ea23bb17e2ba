"""An infinite or NaN wait is a bounded ``Retry-After`` (at most a day), not a 500."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from resilience_django import responses
from resilience_django.breakers.state import CircuitOpen

DAY = 86_400
received: list[dict[str, Any]] = []


def handler(request: Any, **details: Any) -> HttpResponse:
    received.append(details)
    return HttpResponse(status=503)


@pytest.mark.parametrize("seconds", [math.inf, math.nan, 1e300])
def test_whole_seconds_is_at_most_a_day(seconds: float) -> None:
    assert responses.whole_seconds(seconds) == DAY


def test_whole_seconds_below_the_cap_is_unchanged() -> None:
    assert responses.whole_seconds(-math.inf) == 0
    assert responses.whole_seconds(DAY - 0.5) == DAY
    assert responses.whole_seconds(2.1) == 3


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_an_open_breaker_with_an_infinite_wait_is_a_503(accept: str) -> None:
    request = RequestFactory().get("/", HTTP_ACCEPT=accept)
    response = responses.for_exception(request, CircuitOpen("forever", math.inf))
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == str(DAY)


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_a_limit_with_an_unbounded_wait_is_a_429(seconds: float) -> None:
    request = RequestFactory().get("/", HTTP_ACCEPT="application/json")
    response = responses.rate_limited(request, rules=("r",), retry_after=seconds)
    assert response.status_code == 429
    assert response["Retry-After"] == str(DAY)


@override_settings(RESILIENCE={"RESPONSE_HANDLERS": {"unavailable": f"{__name__}.handler"}})
def test_a_custom_handler_gets_the_bounded_whole_seconds() -> None:
    received.clear()
    request = RequestFactory().get("/")
    response = responses.unavailable(request, reason="shed", name="n", retry_after=math.inf)
    assert response.status_code == 503
    assert received[0]["retry_after"] == DAY
