from __future__ import annotations

from typing import Any

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.shedding.adaptive import AdaptiveLimit
from resilience_django.shedding.rules import parse_shedding_rule, parse_shedding_rules

GOOD: dict[str, Any] = {
    "name": "orders",
    "path": "/api/orders",
    "max_concurrent": 50,
    "queue": 100,
    "max_wait": "200ms",
    "critical_share": 0.2,
}


def test_design_example_parses_into_a_rule() -> None:
    rule = parse_shedding_rule(GOOD, index=0)
    assert (rule.name, rule.max_concurrent, rule.queue) == ("orders", 50, 100)
    assert rule.max_wait == pytest.approx(0.2)
    assert rule.critical_share == 0.2 and not rule.adaptive
    matcher = rule.matcher
    assert matcher.matches("GET", "/api/orders/1") and not matcher.matches("GET", "/api/other")


def test_defaults_are_no_queue_and_a_short_wait() -> None:
    rule = parse_shedding_rule({"name": "x", "max_concurrent": 5}, index=0)
    assert rule.queue == 0 and rule.max_wait == pytest.approx(0.1)
    assert rule.critical_share == 0.0 and rule.min_concurrent == 5


def test_wait_timeout_never_exceeds_the_remaining_deadline() -> None:
    rule = parse_shedding_rule(GOOD, index=0)
    assert rule.wait_timeout(None) == pytest.approx(0.2)
    assert rule.wait_timeout(0.05) == pytest.approx(0.05)
    assert rule.wait_timeout(-1.0) == 0.0


def test_requests_are_critical_by_path_method_header_or_rule() -> None:
    rule = parse_shedding_rule(
        {
            **GOOD,
            "critical_paths": ["/api/orders/checkout", r"^/api/orders/\d+/pay$"],
            "critical_methods": ["delete"],
            "critical_header": "X-Priority",
        },
        index=0,
    )
    assert rule.critical_header == "X-Priority"
    assert rule.is_critical("POST", "/api/orders/checkout/now")
    assert rule.is_critical("POST", "/api/orders/12/pay")
    assert rule.is_critical("DELETE", "/api/orders/12")
    assert rule.is_critical("GET", "/api/orders", header="1")
    assert not rule.is_critical("GET", "/api/orders", header="false")
    assert not rule.is_critical("GET", "/api/orders/12")
    whole = parse_shedding_rule({**GOOD, "critical": True}, index=0)
    assert whole.is_critical("GET", "/api/orders")


def test_make_bulkhead_uses_the_rule_limits() -> None:
    bulkhead = parse_shedding_rule(GOOD, index=0).make_bulkhead()
    assert bulkhead.limit == 50 and bulkhead.queue == 100 and bulkhead.name == "orders"


def test_adaptive_rule_runs_between_floor_and_max_concurrent() -> None:
    rule = parse_shedding_rule({**GOOD, "adaptive": True, "min_concurrent": 10}, index=0)
    bulkhead = rule.make_bulkhead()
    assert isinstance(bulkhead._adaptive, AdaptiveLimit)
    assert bulkhead._adaptive.max_limit == 50 and bulkhead.limit == 10


@pytest.mark.parametrize(
    ("change", "check_id"),
    [
        ({"bogus": 1}, "resilience.E070"),
        ({"name": ""}, "resilience.E071"),
        ({"name": None}, "resilience.E071"),
        # Names label metrics and 503s: control characters would forge log lines and labels.
        ({"name": "orders\n"}, "resilience.E071"),
        ({"name": "orders\r\nX-Injected: 1"}, "resilience.E071"),
        ({"name": "ord\x00ers"}, "resilience.E071"),
        ({"name": "ord\x1bers"}, "resilience.E071"),
        ({"name": "orders api"}, "resilience.E071"),
        ({"name": "o" * 101}, "resilience.E071"),
        ({"path": "api/orders"}, "resilience.E072"),
        ({"methods": "POST"}, "resilience.E072"),
        ({"max_concurrent": 0}, "resilience.E073"),
        ({"max_concurrent": "50"}, "resilience.E073"),
        ({"max_concurrent": True}, "resilience.E073"),
        ({"queue": -1}, "resilience.E074"),
        ({"max_concurrent": 2**63 - 1}, "resilience.E073"),
        ({"max_concurrent": 1_000_001}, "resilience.E073"),
        ({"queue": 2**31 - 1}, "resilience.E074"),
        ({"max_wait": "2d"}, "resilience.E075"),
        ({"max_wait": "soon"}, "resilience.E075"),
        ({"adaptive": "yes"}, "resilience.E076"),
        ({"min_concurrent": 51}, "resilience.E076"),
        ({"critical_share": 1.0}, "resilience.E077"),
        ({"critical_share": "0.2"}, "resilience.E077"),
        ({"critical": 1}, "resilience.E078"),
        ({"critical_paths": "/x"}, "resilience.E078"),
        ({"critical_paths": ["x"]}, "resilience.E078"),
        ({"critical_methods": "GET"}, "resilience.E078"),
        ({"critical_header": ""}, "resilience.E078"),
        ({"critical_header": "X Priority"}, "resilience.E078"),
        ({"critical_header": "X-Priority:"}, "resilience.E078"),
    ],
)
def test_each_kind_of_problem_has_its_own_check_id(change: dict[str, Any], check_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule({**GOOD, **change}, index=3)
    assert info.value.check_id == check_id
    assert "RESILIENCE['SHEDDING'][3]" in str(info.value) and info.value.hint


def test_a_rule_that_is_not_a_dict_is_e070() -> None:
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule(["orders"], index=0)
    assert info.value.check_id == "resilience.E070"


def test_parsing_all_rules_keeps_good_ones_and_reports_duplicates_as_e079() -> None:
    rules, errors = parse_shedding_rules([GOOD, {**GOOD, "path": "/x"}, {"name": "bad"}])
    assert [r.name for r in rules] == ["orders"]
    assert [e.check_id for e in errors] == ["resilience.E079", "resilience.E073"]


def test_a_bad_critical_path_error_names_critical_paths_not_the_rule_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule({**GOOD, "critical_paths": ["/ok", "^/api/("]}, index=0)
    assert info.value.check_id == "resilience.E078"
    assert "('orders'): critical_paths: path '^/api/(' is not a valid regular expression" in str(
        info.value
    )


def test_the_largest_sizes_in_range_parse() -> None:
    rule = parse_shedding_rule({**GOOD, "max_concurrent": 1_000_000, "queue": 1_000_000}, index=0)
    assert (rule.max_concurrent, rule.queue) == (1_000_000, 1_000_000)


@pytest.mark.parametrize("name", ["orders", "api.v1:orders/checkout-fast_lane", "o" * 100])
def test_a_name_a_limit_rule_would_take_is_a_good_shedding_rule_name(name: str) -> None:
    assert parse_shedding_rule({**GOOD, "name": name}, index=0).name == name


def test_a_bad_name_error_says_what_a_name_may_hold() -> None:
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule({**GOOD, "name": "orders\n"}, index=0)
    assert info.value.check_id == "resilience.E071"
    assert "1-100 letters, digits or _ . : / -" in str(info.value)
    assert "\n" not in str(info.value)  # the bad name is shown escaped, never raw


def test_critical_paths_hold_at_most_100_entries() -> None:
    paths = [f"/api/orders/{i}/" for i in range(100)]
    rule = parse_shedding_rule({**GOOD, "critical_paths": paths}, index=0)
    assert len(rule.critical_prefixes) == 100
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule({**GOOD, "critical_paths": [*paths, "/api/orders/last/"]}, index=2)
    assert info.value.check_id == "resilience.E078"
    assert "critical_paths" in str(info.value) and "101" in str(info.value)
    assert "100" in info.value.hint


def test_a_million_critical_paths_are_refused_too() -> None:
    with pytest.raises(ConfigError) as info:
        parse_shedding_rule({**GOOD, "critical_paths": ["^/a(b|c)*d$"] * 1_000_000}, index=0)
    assert info.value.check_id == "resilience.E078"
