"""Bad values the fuzz test missed: each is a phrased check error with its own id, never the
parser safety net ("could not be read"), and the rest of the section stays in force."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from resilience_django.checks import check_settings
from resilience_django.conf import UNEXPECTED, parse_settings

HUGE = 10**5000  # repr() and str() of it raise ValueError
GOOD_RULE = {"name": "good", "rate": "10/s"}


def _errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    parsed = parse_settings(raw)
    found = [(e.check_id, str(e)) for e in parsed.errors]
    assert not [m for _, m in found if UNEXPECTED in m], found
    return found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", HUGE),
        ("view", HUGE),
        ("methods", HUGE),
        ("methods", [HUGE]),
        ("path", "^a{4294967296}"),  # OverflowError from re.compile
        ("path", "^" + "(" * 5000 + ")" * 5000),  # RecursionError from re.compile
    ],
    ids=["huge-path", "huge-view", "huge-methods", "huge-method", "regex-overflow", "regex-deep"],
)
def test_a_limit_rule_with_an_unusable_route_is_e027_and_the_other_rules_stay(
    field: str, value: Any
) -> None:
    raw = {"LIMITS": [GOOD_RULE, {"name": "bad", "rate": "10/s", field: value}]}
    assert [i for i, _ in _errors(raw)] == ["resilience.E027"]
    assert [rule.name for rule in parse_settings(raw).limits] == ["good"]


@pytest.mark.parametrize(
    "methods", [[None], [1], ["GET, POST"], ["G\u0415T"], [""], b"GET", ["GET "]]
)
def test_methods_that_could_never_match_are_e027(methods: Any) -> None:
    raw = {"LIMITS": [{"name": "bad", "rate": "10/s", "methods": methods}]}
    assert [i for i, _ in _errors(raw)] == ["resilience.E027"]


def test_method_names_still_match_in_any_case() -> None:
    raw = {"LIMITS": [{"name": "r", "rate": "10/s", "methods": ["post", "GET", "PURGE"]}]}
    assert _errors(raw) == []
    matcher = parse_settings(raw).limits[0].matcher
    assert matcher.methods == {"POST", "GET", "HEAD", "PURGE"}


def test_a_shedding_rule_and_a_route_breaker_with_a_huge_path_get_their_own_ids() -> None:
    shed = {"SHEDDING": [{"name": "s", "max_concurrent": 5, "path": HUGE}]}
    assert [i for i, _ in _errors(shed)] == ["resilience.E072"]
    breaker = {"BREAKERS": {"b": {"path": "/a", "methods": [HUGE]}, "ok": {}}}
    assert [i for i, _ in _errors(breaker)] == ["resilience.E069"]
    assert list(parse_settings(breaker).breakers) == ["ok"]


@pytest.mark.parametrize(
    ("deadline", "check_id"),
    [
        ({"ROUTES": {HUGE: "1s", "/api": "2s"}}, "resilience.E008"),
        ({"ROUTES": {"^a{4294967296}": "1s", "/api": "2s"}}, "resilience.E008"),
        ({"ROUTES": {"/api": "2s"}, "EXEMPT_STREAMS": [HUGE]}, "resilience.E015"),
    ],
    ids=["huge-route", "regex-overflow", "huge-stream"],
)
def test_a_bad_deadline_route_keeps_the_rest_of_deadline(
    deadline: dict[Any, Any], check_id: str
) -> None:
    raw = {"DEADLINE": {"DEFAULT": "5s", **deadline}}
    assert [i for i, _ in _errors(raw)] == [check_id]
    parsed = parse_settings(raw).deadline
    assert parsed.default == 5.0
    assert [route.label for route in parsed.routes] == ["/api"]


def test_an_unprintable_handler_is_e009_and_the_other_handlers_stay() -> None:
    raw = {"RESPONSE_HANDLERS": {"deadline": HUGE, "unavailable": "json.dumps"}}
    assert [i for i, _ in _errors(raw)] == ["resilience.E009"]
    assert list(parse_settings(raw).response_handlers) == ["unavailable"]


def test_an_unknown_deadline_key_is_e005() -> None:
    found = _errors({"DEADLINE": {"DEFALT": "1s"}})
    assert [i for i, _ in found] == ["resilience.E005"]
    assert "DEFALT" in found[0][1]


@pytest.mark.parametrize("headers", [["X-Timeout-Ms "], ["x timeout"], ["x-t\u00efmeout"]])
def test_header_names_that_could_never_be_read_are_e006(headers: list[str]) -> None:
    raw = {"DEADLINE": {"HEADERS": headers}}
    assert [i for i, _ in _errors(raw)] == ["resilience.E006"]
    assert parse_settings(raw).deadline.headers == ("grpc-timeout", "x-timeout-ms")


@pytest.mark.parametrize("value", [{}, 0, False, ""])
def test_shedding_of_the_wrong_type_is_e070_even_when_empty(value: Any) -> None:
    assert [i for i, _ in _errors({"SHEDDING": value})] == ["resilience.E070"]


def test_shedding_none_is_no_rules() -> None:
    assert _errors({"SHEDDING": None}) == []


class SyncOnly:
    """A sync-only middleware (no async_capable)."""


def __getattr__(name: str) -> Any:
    # A middleware whose import raises something other than ImportError (its module
    # raising ImproperlyConfigured at import, say).
    if name == "BrokenOnImport":
        raise RuntimeError("the middleware's module failed")
    raise AttributeError(name)


def test_a_middleware_that_fails_to_import_does_not_break_the_check() -> None:
    here = __name__
    middleware = [
        "resilience_django.middleware.ResilienceMiddleware",
        f"{here}.BrokenOnImport",
        f"{here}.SyncOnly",
    ]
    with override_settings(MIDDLEWARE=middleware, RESILIENCE={}):
        messages = check_settings()
    assert [m.id for m in messages] == ["resilience.W004"]
    assert messages[0].level == checks.WARNING
    assert sys.modules[here]  # the module is importable: only the attribute fails
