"""Parsing limit rules: defaults, and one check id per kind of problem."""

from __future__ import annotations

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.decision import Algorithm
from resilience_django.limiting.rules import parse_limit_rule, parse_limit_rules
from resilience_django.units import Rate


def key_function(request):
    return "k"


def test_minimal_rule_gets_the_documented_defaults():
    rule = parse_limit_rule({"name": "api", "rate": "100/m"}, index=0)
    assert rule.name == "api" and rule.key == "ip"
    assert rule.policy.rate == Rate(100, 60.0)
    assert rule.policy.algorithm is Algorithm.SLIDING_WINDOW
    assert rule.policy.burst is None and rule.policy.name == "api"
    assert (rule.scope, rule.mode) == ("local", "enforce")
    assert rule.matcher.matches("GET", "/anything")
    assert rule.rate == "100/m"


def test_full_rule_parses_every_field():
    rule = parse_limit_rule(
        {
            "name": "orders-per-ip",
            "path": "/api/orders",
            "methods": ["post"],
            "key": "header:X-Api-Key",
            "rate": "10/s",
            "burst": 20,
            "algorithm": "gcra",
            "scope": "distributed",
            "mode": "shadow",
        },
        index=3,
    )
    assert rule.policy.capacity == 20 and rule.policy.algorithm is Algorithm.GCRA
    assert rule.matcher.matches("POST", "/api/orders/1")
    assert not rule.matcher.matches("GET", "/api/orders/1")
    assert (rule.scope, rule.mode, rule.key) == ("distributed", "shadow", "header:X-Api-Key")


def test_dotted_path_key_is_imported_at_parse_time():
    rule = parse_limit_rule(
        {"name": "x", "rate": "1/s", "key": "tests.limiting.test_rules.key_function"}, index=0
    )
    assert rule.key == "tests.limiting.test_rules.key_function"


@pytest.mark.parametrize(
    ("mapping", "check_id"),
    [
        ({"name": "a", "rate": "10/x"}, "E020"),
        ({"name": "a"}, "E020"),
        ({"name": "a", "rate": 10}, "E020"),
        ({"name": "a", "rate": "1/s", "algorithm": "leaky"}, "E021"),
        ({"name": "a", "rate": "1/s", "key": "ipv4"}, "E022"),
        ({"name": "a", "rate": "1/s", "key": "header:"}, "E022"),
        ({"name": "a", "rate": "1/s", "key": "no.such.module.func"}, "E022"),
        ({"name": "a", "rate": "1/s", "key": 5}, "E022"),
        ({"name": "a", "rate": "1/s", "scope": "global"}, "E023"),
        ({"name": "a", "rate": "1/s", "mode": "dry-run"}, "E024"),
        ({"name": "a", "rate": "1/s", "burst": 0}, "E025"),
        ({"name": "a", "rate": "1/s", "burst": "5"}, "E025"),
        ({"name": "a", "rate": "1/s", "burst": True}, "E025"),
        # The sliding window has no burst: a burst there would be silently ignored.
        ({"name": "a", "rate": "1/s", "burst": 5}, "E025"),
        ({"name": "a", "rate": "1/s", "burst": 5, "algorithm": "sliding_window"}, "E025"),
        ({"rate": "1/s"}, "E026"),
        ({"name": 'bad"name', "rate": "1/s"}, "E026"),
        # A newline would end up in the RateLimit headers: $ would let one through.
        ({"name": "api\n", "rate": "1/s"}, "E026"),
        ({"name": "a", "rate": "1/s", "path": "api"}, "E027"),
        ({"name": "a", "rate": "1/s", "path": "^(("}, "E027"),
        ({"name": "a", "rate": "1/s", "methods": "POST"}, "E027"),
        ({"name": "a", "rate": "1/s", "view": ""}, "E027"),
        ("not a dict", "E028"),
        ({"name": "a", "rate": "1/s", "limit": 5}, "E029"),
    ],
)
def test_each_kind_of_problem_has_its_own_check_id(mapping, check_id):
    with pytest.raises(ConfigError) as info:
        parse_limit_rule(mapping, index=2)
    assert info.value.check_id == f"resilience.{check_id}"
    assert "RESILIENCE['LIMITS'][2]" in str(info.value)
    assert info.value.hint


def test_rule_list_keeps_good_rules_and_reports_bad_and_duplicate_ones():
    rules, errors = parse_limit_rules(
        [
            {"name": "a", "rate": "1/s"},
            {"name": "b", "rate": "nope"},
            {"name": "a", "rate": "2/s"},
            {"name": "c", "rate": "3/s", "mode": "off"},
        ]
    )
    assert [r.name for r in rules] == ["a", "c"]
    assert [e.check_id for e in errors] == ["resilience.E020", "resilience.E026"]


@pytest.mark.parametrize("value", [{"name": "a"}, "rules", 5])
def test_limits_that_is_not_a_list_is_e030(value):
    rules, errors = parse_limit_rules(value)
    assert rules == () and [e.check_id for e in errors] == ["resilience.E030"]


def test_no_limits_is_no_rules():
    assert parse_limit_rules(None) == ((), ())


def test_burst_with_the_sliding_window_is_refused_with_a_hint_naming_the_algorithms():
    with pytest.raises(ConfigError) as info:
        parse_limit_rule({"name": "api", "rate": "100/m", "burst": 20}, index=0)
    assert info.value.check_id == "resilience.E025"
    assert "sliding_window" in str(info.value) and "burst" in str(info.value)
    assert "token_bucket" in info.value.hint and "gcra" in info.value.hint


@pytest.mark.parametrize("algorithm", ["token_bucket", "gcra"])
def test_burst_sets_the_capacity_of_the_token_bucket_and_gcra(algorithm):
    rule = parse_limit_rule(
        {"name": "api", "rate": "100/m", "burst": 20, "algorithm": algorithm}, index=0
    )
    assert rule.policy.capacity == 20


def test_a_burst_out_of_range_with_the_sliding_window_is_one_problem_not_two():
    with pytest.raises(ConfigError) as info:
        parse_limit_rule({"name": "api", "rate": "100/m", "burst": 0}, index=0)
    assert info.value.check_id == "resilience.E025"
    assert "must be an integer from 1" in str(info.value)


def test_an_unknown_algorithm_with_a_burst_is_only_the_unknown_algorithm():
    with pytest.raises(ConfigError) as info:
        parse_limit_rule(
            {"name": "api", "rate": "100/m", "burst": 5, "algorithm": "leaky"}, index=0
        )
    assert info.value.check_id == "resilience.E021"


@pytest.mark.parametrize("empty", [[], (), set()])
def test_an_empty_methods_list_is_e027_with_a_hint_to_leave_it_out(empty):
    # It would match no request at all: a rule that saves, shows "in force" and never limits.
    with pytest.raises(ConfigError) as info:
        parse_limit_rule({"name": "a", "rate": "1/m", "methods": empty}, index=0)
    assert info.value.check_id == "resilience.E027"
    assert "leave methods out" in info.value.hint.lower()
    rules, errors = parse_limit_rules([{"name": "a", "rate": "1/m", "methods": []}])
    assert rules == () and [e.check_id for e in errors] == ["resilience.E027"]
