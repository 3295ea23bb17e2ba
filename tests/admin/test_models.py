"""Model validation goes through the settings' own parsers; each bad value is a field error."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule


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
        # A dotted path settings do not list: refused before any import.
        ({"key": "no.such.module.func"}, "key", ["not allowed here", "ADMIN_CHOICES"]),
        # Admin rows take prefixes only: a regex could make every request slow.
        ({"path": "^/(a+)+$"}, "path", ["is a regular expression", "prefix", "E027"]),
        ({"path": "^/api/(unclosed"}, "path", ["regular expression", "E027"]),
        ({"path": "api/no-slash"}, "path", ["must start with '/'", "E027"]),
        ({"burst": 0}, "burst", ["must be an integer from 1", "E025"]),
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
    rule = _limit(
        path="/api/", methods="post, PUT", key="header:X-Api-Key", algorithm="token_bucket", burst=5
    )
    rule.full_clean()
    assert rule.as_setting() == {
        "name": "api",
        "key": "header:X-Api-Key",
        "rate": "10/s",
        "algorithm": "token_bucket",
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
        ({"record": "no.such.Error"}, "record", ["not allowed here", "ADMIN_CHOICES"]),
        ({"failure_result": "no.such.predicate"}, "failure_result", ["ADMIN_CHOICES"]),
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
        ({"route": "^/(a+)+$", "budget": "1s"}, "route", ["is a regular expression", "E008"]),
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
def test_route_deadline_accepts_prefix_and_url_name() -> None:
    for route in ("/api/orders", "orders:quote"):
        RouteDeadline(route=route, budget="800ms").full_clean()


def _shedding(**fields: Any) -> SheddingRule:
    return SheddingRule(**{"name": "orders", "path": "/api/orders", "max_concurrent": 50, **fields})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"max_concurrent": 0}, "max_concurrent", ["must be an integer from 1", "E073"]),
        ({"queue": -1}, "queue", ["must be an integer from 0", "E074"]),
        ({"max_wait": "soon"}, "max_wait", ["'soon' is not a duration", "E075"]),
        ({"max_wait": "-5ms"}, "max_wait", ["'-5ms' is not a duration", "E075"]),
        ({"adaptive": True, "min_concurrent": 60}, "min_concurrent", ["between 1 and", "E076"]),
        ({"min_concurrent": 0}, "min_concurrent", ["E076"]),
        ({"critical_share": 1.0}, "critical_share", ["up to (not including) 1", "E077"]),
        ({"critical_share": -0.1}, "critical_share", ["E077"]),
        ({"path": "api/orders"}, "path", ["must start with '/'", "E072"]),
        ({"path": "^/api/("}, "path", ["is a regular expression", "E072"]),
        (
            {"critical_paths": "/api/orders/pay\n^/api/orders/\\d+\n"},
            "critical_paths",
            ["'^/api/orders/\\\\d+' is a regular expression", "E078"],
        ),
        ({"critical_paths": "checkout"}, "critical_paths", ["must start with '/'", "E078"]),
        ({"critical_header": "X Priority"}, "critical_header", ["header name", "E078"]),
    ],
)
def test_bad_shedding_rule_value_is_an_error_on_its_field(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    errors = _errors(_shedding(**fields))
    assert field in errors, errors
    for word in words:
        assert word in errors[field][0]
    assert "RESILIENCE[" not in errors[field][0]


@pytest.mark.django_db
def test_valid_shedding_rule_passes_and_round_trips_to_a_setting() -> None:
    from resilience_django.shedding.rules import parse_shedding_rule

    rule = _shedding(
        methods="post, PUT",
        queue=100,
        max_wait="200ms",
        adaptive=True,
        min_concurrent=10,
        critical_share=0.2,
        critical_paths="/api/orders/checkout\n/api/orders/pay,later\n",
        critical_methods="DELETE",
        critical_header=" X-Priority ",
    )
    rule.full_clean()
    entry = rule.as_setting()
    assert entry == {
        "name": "orders",
        "path": "/api/orders",
        "methods": ["post", "PUT"],
        "max_concurrent": 50,
        "queue": 100,
        "max_wait": "200ms",
        "adaptive": True,
        "min_concurrent": 10,
        "critical_share": 0.2,
        "critical": False,
        # One a line: a comma inside a path does not split it.
        "critical_paths": ["/api/orders/checkout", "/api/orders/pay,later"],
        "critical_methods": ["DELETE"],
        "critical_header": "X-Priority",
    }
    parsed = parse_shedding_rule(entry, index=0)
    assert parsed.is_critical("POST", "/api/orders/pay,later/12")
    assert parsed.min_concurrent == 10 and parsed.max_wait == pytest.approx(0.2)


@pytest.mark.django_db
def test_shedding_rule_defaults_are_the_settings_defaults() -> None:
    from resilience_django.shedding.rules import parse_shedding_rule

    row = SheddingRule(name="api", max_concurrent=5)
    row.full_clean()
    from_row = parse_shedding_rule(row.as_setting(), index=0)
    from_settings = parse_shedding_rule({"name": "api", "max_concurrent": 5}, index=0)
    assert from_row == from_settings


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("backend", "scope"),
    [
        ({}, "local"),
        ({"BACKEND": "redis", "REDIS": {"URL": "redis://127.0.0.1:1/0"}}, "distributed"),
    ],
)
def test_the_admin_add_form_preselects_the_scope_that_follows_backend(
    admin_client: Any, backend: dict[str, Any], scope: str
) -> None:
    with override_settings(RESILIENCE=backend):
        response = admin_client.get(reverse("admin:resilience_django_limitrule_add"))
    assert response.context["adminform"].form["scope"].value() == scope
