"""The IETF draft headers and Retry-After rounding."""

from __future__ import annotations

from resilience_django.limiting.decision import LimitCheck, Policy, RuleOutcome
from resilience_django.limiting.headers import build_headers
from resilience_django.units import Rate


def outcome(name, limit, period, allowed, remaining, reset, retry=0.0):
    check = LimitCheck(Policy(name, Rate(limit, period)), "k")
    return RuleOutcome(check, allowed, remaining, reset, retry)


def test_one_rule_gives_policy_and_ratelimit_headers():
    assert build_headers([outcome("api", 100, 60.0, True, 99, 59.2)]) == [
        ("RateLimit-Policy", '"api";q=100;w=60'),
        ("RateLimit", '"api";r=99;t=60'),
    ]


def test_several_rules_are_comma_separated_in_order():
    headers = dict(
        build_headers(
            [outcome("a", 10, 1.0, True, 3, 0.5), outcome("b", 5, 3600.0, False, 0, 10.0, 12.1)]
        )
    )
    assert headers["RateLimit-Policy"] == '"a";q=10;w=1, "b";q=5;w=3600'
    # A rejected rule's t is when the request could pass, never earlier.
    assert headers["RateLimit"] == '"a";r=3;t=1, "b";r=0;t=13'


def test_no_outcomes_no_headers():
    assert build_headers([]) == []


def test_sub_second_periods_round_up_to_one_second():
    assert build_headers([outcome("f", 1, 0.5, True, 0, 0.2)])[0][1] == '"f";q=1;w=1'


def test_reset_is_whole_seconds_rounded_up_and_never_negative():
    # (Retry-After is rounded by responses.whole_seconds, tested on its own.)
    for reset, shown in [(12.01, 13), (12.0, 12), (0.0, 0), (-3.0, 0)]:
        headers = build_headers([outcome("r", 1, 60.0, True, 0, reset)])
        assert headers[1] == ("RateLimit", f'"r";r=0;t={shown}')
