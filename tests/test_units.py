from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.units import Rate, parse_duration, parse_rate


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
