from __future__ import annotations

import asyncio

import pytest

from resilience_django.breakers.policy import BreakerPolicy, parse_breaker_policy
from resilience_django.deadline import DeadlineExceeded
from resilience_django.exceptions import ConfigError


def is_5xx(result: object) -> bool:
    return getattr(result, "status_code", 200) >= 500


def test_defaults_match_the_documented_contract() -> None:
    p = parse_breaker_policy("pricing", {})
    assert (p.failure_threshold, p.open_for, p.half_open_calls, p.close_ratio) == (5, 30.0, 10, 0.9)
    assert (p.window, p.error_rate, p.min_calls, p.mode, p.shared) == (
        60.0,
        0.5,
        20,
        "normal",
        False,
    )
    assert p.open_for_max is None and p.slow_call is None
    assert asyncio.CancelledError in p.caller_fault and DeadlineExceeded in p.caller_fault


def test_durations_dotted_paths_and_poll_are_parsed() -> None:
    p = parse_breaker_policy(
        "pricing",
        {
            "open_for": "10s",
            "open_for_max": "5m",
            "slow_call": "800ms",
            "slow_call_rate": 0.5,
            "record": ["builtins.OSError"],
            "ignore": "builtins.FileNotFoundError",
            "failure_result": "tests.breakers.test_policy.is_5xx",
            "shared": True,
            "shared_poll": 250,
        },
    )
    assert (p.open_for, p.open_for_max, p.slow_call, p.shared_poll) == (10.0, 300.0, 0.8, 0.25)
    assert p.record == (OSError,) and p.ignore == (FileNotFoundError,)
    assert p.failure_result is is_5xx


def test_open_duration_doubles_per_retrip_up_to_the_cap() -> None:
    p = BreakerPolicy(open_for=10, open_for_max=60)
    assert [p.open_duration(n) for n in range(5)] == [10, 20, 40, 60, 60]
    assert BreakerPolicy(open_for=10).open_duration(5) == 10


def test_trials_to_close_rounds_up_without_float_error() -> None:
    assert BreakerPolicy(half_open_calls=10, close_ratio=0.9).trials_to_close == 9
    assert BreakerPolicy(half_open_calls=3, close_ratio=0.5).trials_to_close == 2


@pytest.mark.parametrize(
    ("name", "mapping", "check_id"),
    [
        ("pricing", [], "resilience.E050"),
        ("", {}, "resilience.E051"),
        ("pricing", {"treshold": 3}, "resilience.E052"),
        ("pricing", {"failure_threshold": 0}, "resilience.E053"),
        ("pricing", {"open_for": "ten"}, "resilience.E054"),
        ("pricing", {"open_for": 0}, "resilience.E054"),
        ("pricing", {"open_for": "30s", "open_for_max": "10s"}, "resilience.E055"),
        ("pricing", {"half_open_calls": 0}, "resilience.E056"),
        ("pricing", {"close_ratio": 1.5}, "resilience.E057"),
        ("pricing", {"error_rate": 0}, "resilience.E058"),
        ("pricing", {"min_calls": "20"}, "resilience.E059"),
        ("pricing", {"window": "500ms"}, "resilience.E060"),
        ("pricing", {"slow_call_rate": 0.5}, "resilience.E061"),
        ("pricing", {"ewma_alpha": 2}, "resilience.E062"),
        ("pricing", {"record": ["no.such.Error"]}, "resilience.E063"),
        ("pricing", {"ignore": ["builtins.len"]}, "resilience.E063"),
        ("pricing", {"failure_result": "no.such.predicate"}, "resilience.E064"),
        ("pricing", {"mode": "shadow"}, "resilience.E065"),
        ("pricing", {"shared": "yes"}, "resilience.E066"),
        ("pricing", {"shared_poll": 1}, "resilience.E067"),
        ("pricing", {"failure_threshold": None, "error_rate": None}, "resilience.E068"),
    ],
)
def test_each_bad_setting_names_its_own_check_id(name: str, mapping: object, check_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_breaker_policy(name, mapping)
    assert info.value.check_id == check_id


def test_metrics_only_breaker_may_have_no_trip_criterion() -> None:
    p = parse_breaker_policy(
        "x", {"failure_threshold": None, "error_rate": None, "mode": "metrics_only"}
    )
    assert p.mode == "metrics_only"


def test_parse_breakers_collects_every_error_for_the_system_checks() -> None:
    from resilience_django.breakers.policy import parse_breakers

    policies, errors = parse_breakers({"ok": {}, "bad1": {"mode": "x"}, "bad2": {"close_ratio": 0}})
    assert list(policies) == ["ok"]
    assert sorted(e.check_id for e in errors) == ["resilience.E057", "resilience.E065"]
    assert all("RESILIENCE['BREAKERS']" in str(e) for e in errors)
    assert [e.check_id for e in parse_breakers(["pricing"])[1]] == ["resilience.E050"]
