from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.retrying.backoff import (
    full_jitter,
    parse_retry_after,
    response_of,
    retry_after_of,
)


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class FakeHTTPError(Exception):
    def __init__(self, response: FakeResponse) -> None:
        super().__init__("http error")
        self.response = response


@given(
    retry=st.integers(min_value=0, max_value=200),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=60),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_full_jitter_stays_within_zero_and_the_capped_exponential(
    retry: int, base: float, cap: float, r: float
) -> None:
    delay = full_jitter(retry, base, cap, lambda: r)
    ceiling = min(cap, base * 2.0**retry) if retry < 63 else cap
    assert 0 <= delay <= ceiling


def test_full_jitter_doubles_until_the_cap() -> None:
    top = [full_jitter(n, 0.1, 1.0, lambda: 1.0) for n in range(6)]
    assert top == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, wall=lambda: 1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after(date, wall=lambda: 2_000_000.0) == 0.0  # in the past


@pytest.mark.parametrize("value", ["", "soon", "-5", "nan", "inf", "Tue, 99 Foo 2020"])
def test_unparseable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_is_read_from_429_and_503_answers_and_their_errors() -> None:
    assert retry_after_of(FakeResponse(503, {"Retry-After": "2"})) == 2.0
    assert retry_after_of(FakeResponse(429, {"Retry-After": "7"})) == 7.0
    assert retry_after_of(FakeHTTPError(FakeResponse(503, {"Retry-After": "4"}))) == 4.0
    assert retry_after_of(FakeResponse(500, {"Retry-After": "2"})) is None
    assert retry_after_of(FakeResponse(503)) is None
    assert retry_after_of(ValueError("no response")) is None


def test_responses_are_recognised_by_their_attributes() -> None:
    response = FakeResponse(200)
    assert response_of(response) is response
    assert response_of(FakeHTTPError(response)) is response
    assert response_of("text") is None


def test_default_retry_on_covers_network_errors_and_retryable_http_errors() -> None:
    import httpx
    import requests

    from resilience_django.retrying.backoff import default_retry_on, is_circuit_open

    assert default_retry_on(httpx.ConnectError("refused"))
    assert default_retry_on(httpx.ReadTimeout("slow"))
    assert default_retry_on(requests.exceptions.ConnectionError("refused"))
    assert default_retry_on(requests.exceptions.ReadTimeout("slow"))
    assert default_retry_on(ConnectionResetError())
    assert default_retry_on(FakeHTTPError(FakeResponse(503)))
    assert not default_retry_on(FakeHTTPError(FakeResponse(400)))
    assert not default_retry_on(ValueError("bug"))
    from resilience_django.breakers.state import CircuitOpen

    assert is_circuit_open(CircuitOpen("pricing", 1.0))
    assert not is_circuit_open(ConnectionError())
