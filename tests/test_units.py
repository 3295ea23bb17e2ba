from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.units import (
    MAX_BURST,
    MAX_DEADLINE,
    MAX_LOCAL_KEYS,
    Rate,
    parse_deadline_budget,
    parse_duration,
    parse_rate,
    safe_repr,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("800ms", 0.8), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1.5s", 1.5), (2, 2.0)],
)
def test_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "-5s", "ms", True, None, float("nan"), -1])
def test_bad_durations_raise_value_error_naming_the_value(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/m", Rate(100, 60.0)),
        ("10/s", Rate(10, 1.0)),
        ("5000/h", Rate(5000, 3600.0)),
        ("100/30s", Rate(100, 30.0)),
        ("7/minute", Rate(7, 60.0)),
        (" 3 / 500ms ", Rate(3, 0.5)),
    ],
)
def test_rates_parse_to_limit_and_period(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10/x", "0/m", "abc", "/m", "10/", "10/0s", 10])
def test_bad_rates_raise_value_error(text: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)  # type: ignore[arg-type]


@given(st.text(max_size=20))
def test_no_string_makes_the_parsers_raise_anything_but_value_error(text: str) -> None:
    for parser in (parse_rate, parse_duration):
        with contextlib.suppress(ValueError):
            parser(text)


def test_rate_renders_back_to_a_parseable_string() -> None:
    for text in ("100/m", "100/30s", "3/500ms"):
        rate = parse_rate(text)
        assert parse_rate(str(rate)) == rate


# The top of every range must still work in the limiter: the ranges exist so
# that nothing accepted can overflow later (issue 12, item 3).
@pytest.mark.parametrize("algorithm", ["sliding_window", "token_bucket", "gcra"])
@pytest.mark.parametrize("rate", ["1000000000/1ms", "1000000000/365d", "1/365d", "1/1ms"])
def test_the_largest_rates_and_bursts_in_range_decide_locally(algorithm: str, rate: str) -> None:
    from resilience_django.clock import ManualClock
    from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
    from resilience_django.limiting.local import LocalLimiter

    policy = Policy("top", parse_rate(rate), algorithm=Algorithm(algorithm), burst=MAX_BURST)
    limiter = LocalLimiter(max_keys=MAX_LOCAL_KEYS, clock=ManualClock())
    decision = limiter.decide((LimitCheck(policy, "client"),))
    assert decision.allowed


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("9223372036854775808/s", "at most 1_000_000_000"),
        ("1" * 5000 + "/s", "at most 1_000_000_000"),
        ("1/366d", "from 1ms up to 365 days"),
        ("1/0.5ms", "from 1ms up to 365 days"),
    ],
)
def test_rates_out_of_range_raise_value_error_saying_the_range(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        parse_rate(text)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("value", ["366d", 10**30, 10**400, 1e300])
def test_durations_past_a_year_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_a_budget_is_above_zero_and_at_most_a_day() -> None:
    assert parse_deadline_budget("1d") == MAX_DEADLINE == 86400.0
    for bad in ("0s", "25d", "86401s"):
        with pytest.raises(ValueError):
            parse_deadline_budget(bad)


def test_safe_repr_never_raises_and_stays_short() -> None:
    assert "digits" in safe_repr(10**5000)
    assert len(safe_repr("x" * 10_000)) <= 60
    assert safe_repr(5) == "5"


def test_the_view_decorators_refuse_values_past_the_range_when_applied() -> None:
    from resilience_django import limit
    from resilience_django.deadline import deadline
    from resilience_django.exceptions import ConfigError

    with pytest.raises(ConfigError, match="at most 1_000_000_000"):
        limit("9223372036854775808/s")(lambda request: None)
    with pytest.raises(ValueError, match="the most is 1 day"):
        deadline("30d")
