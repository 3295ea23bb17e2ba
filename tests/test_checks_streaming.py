"""The settings that exempt long-lived streams: each bad value has its check id and hint."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from resilience_django.checks import check_settings
from resilience_django.conf import get_settings


def _errors(resilience: Any) -> list[Any]:
    with override_settings(RESILIENCE=resilience):
        return [m for m in check_settings() if m.id.startswith("resilience.E")]


@pytest.mark.parametrize(
    "value", ["/api/events", {"/api/events": True}, [""], [42], ["^/api/("], None]
)
def test_exempt_streams_that_is_not_a_list_of_routes_fails_e015(value: object) -> None:
    errors = _errors({"DEADLINE": {"EXEMPT_STREAMS": value}})
    assert [e.id for e in errors] == ["resilience.E015"]
    assert "EXEMPT_STREAMS" in errors[0].msg
    assert errors[0].hint


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_shedding_rule_whose_exempt_streams_is_not_a_boolean_fails_e080(value: object) -> None:
    errors = _errors(
        {"SHEDDING": [{"name": "events", "max_concurrent": 5, "exempt_streams": value}]}
    )
    assert [e.id for e in errors] == ["resilience.E080"]
    assert errors[0].hint


def test_exempt_streams_take_routes_like_the_route_budgets() -> None:
    resilience = {
        "DEADLINE": {"EXEMPT_STREAMS": ["/api/events", "^/files/\\d+$", "reports:download"]},
        "SHEDDING": [{"name": "events", "max_concurrent": 5, "exempt_streams": True}],
    }
    assert _errors(resilience) == []
    with override_settings(RESILIENCE=resilience):
        settings = get_settings()
        matchers = settings.deadline.exempt_streams
        assert [m.matches("GET", "/api/events/1") for m in matchers] == [True, False, False]
        assert matchers[1].matches("GET", "/files/12")
        assert matchers[2].matches("GET", "/r/1", "reports:download")
        assert settings.shedding[0].exempt_streams is True
