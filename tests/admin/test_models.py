"""Model validation goes through the settings' own parsers; each bad value is a field error."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline


def _errors(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        obj.full_clean()
    return info.value.message_dict


def _limit(**fields: Any) -> LimitRule:
    return LimitRule(**{"name": "api", "rate": "10/s", **fields})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"rate": "10/x"}, "rate", ["10/x", "E020"]),
        ({"key": "nonsense"}, "key", ["not a known key function", "E022"]),
        ({"key": "no.such.module.func"}, "key", ["E022"]),
        ({"path": "^/api/(unclosed"}, "path", ["not a valid regular expression", "E027"]),
        ({"path": "api/no-slash"}, "path", ["must start with '/'", "E027"]),
        ({"burst": 0}, "burst", ["positive integer", "E025"]),
        ({"name": "has space"}, "name", ["E026"]),
    ],
)
def test_bad_limit_rule_value_is_an_error_on_its_field(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    errors = _errors(_limit(**fields))
    assert field in errors, errors
    for word in words:
        assert word in errors[field][0]
    # The settings prefix ("RESILIENCE['LIMITS'][0] ...") is noise in a form.
    assert "RESILIENCE[" not in errors[field][0]


@pytest.mark.django_db
def test_valid_limit_rule_passes_and_round_trips_to_a_setting() -> None:
    rule = _limit(path="/api/", methods="post, PUT", key="header:X-Api-Key", burst=5)
    rule.full_clean()
    assert rule.as_setting() == {
        "name": "api",
        "key": "header:X-Api-Key",
        "rate": "10/s",
        "algorithm": "sliding_window",
        "scope": "local",
        "mode": "enforce",
        "path": "/api/",
        "methods": ["post", "PUT"],
        "burst": 5,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"open_for": "-5s"}, "open_for", ["open_for", "E054"]),
        ({"open_for": "soon"}, "open_for", ["E054"]),
        ({"window": "10m", "open_for_max": "1s"}, "open_for_max", ["E055"]),
        ({"error_rate": 1.5}, "error_rate", ["(0, 1]", "E058"]),
        ({"failure_threshold": -1}, "failure_threshold", ["E053"]),
        ({"slow_call_rate": 0.5}, "slow_call_rate", ["needs slow_call", "E061"]),
        ({"record": "no.such.Error"}, "record", ["E063"]),
        ({"failure_result": "no.such.predicate"}, "failure_result", ["E064"]),
        ({"shared_poll": 1}, "shared_poll", ["E067"]),
    ],
)
def test_bad_breaker_policy_value_is_an_error_on_its_field(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    errors = _errors(BreakerPolicy(name="pricing", **fields))
    assert field in errors, errors
    for word in words:
        assert word in errors[field][0]


@pytest.mark.django_db
def test_breaker_that_nothing_can_trip_is_a_form_wide_error() -> None:
    errors = _errors(BreakerPolicy(name="pricing", failure_threshold=None, error_rate=None))
    assert "E068" in errors["__all__"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"budget": "-800ms"}, "budget", ["-800ms", "E008"]),
        ({"budget": "0s"}, "budget", ["longer than zero"]),
        ({"budget": "fast"}, "budget", ["not a duration"]),
        ({"route": "^/api/[", "budget": "1s"}, "route", ["regular expression", "E008"]),
    ],
)
def test_bad_route_deadline_value_is_an_error_on_its_field(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    errors = _errors(RouteDeadline(**{"route": "/api/", "budget": "1s", **fields}))
    assert field in errors, errors
    for word in words:
        assert word in errors[field][0]


@pytest.mark.django_db
def test_route_deadline_accepts_prefix_regex_and_url_name() -> None:
    for route in ("/api/orders", r"^/api/orders/\d+$", "orders:quote"):
        RouteDeadline(route=route, budget="800ms").full_clean()
