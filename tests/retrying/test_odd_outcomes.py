"""Odd arguments and odd exceptions: `retry_on` as one type, attributes that raise."""

from __future__ import annotations

import pytest

from resilience_django import retry


def test_one_exception_type_retries_only_that_type() -> None:
    calls: list[str] = []

    @retry(attempts=3, backoff=0, budget=None, retry_on=ConnectionError)
    def fails_with(kind: type[Exception]) -> None:
        calls.append(kind.__name__)
        raise kind("boom")

    # Called as a predicate, the class made an exception (always true): every error was retried.
    with pytest.raises(KeyError):
        fails_with(KeyError)
    assert calls == ["KeyError"]
    calls.clear()
    with pytest.raises(ConnectionResetError):
        fails_with(ConnectionResetError)  # a subclass: retried
    assert calls == ["ConnectionResetError"] * 3


async def test_one_exception_type_retries_only_that_type_async() -> None:
    calls = 0

    @retry(attempts=3, backoff=0, budget=None, retry_on=TimeoutError)
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not retryable")

    with pytest.raises(ValueError):
        await fails()
    assert calls == 1


class _ResponseUnset(ConnectionError):
    """As an httpx error's ``request``: a property that raises while it is unset."""

    @property
    def response(self) -> object:
        raise RuntimeError("no response attached")


def test_an_exception_whose_response_property_raises_is_retried_and_stays_itself() -> None:
    calls = 0

    @retry(attempts=3, backoff=0, budget=None)
    def fails() -> None:
        nonlocal calls
        calls += 1
        raise _ResponseUnset("reset")

    # Looking for a Retry-After raised the property's RuntimeError in place of the error.
    with pytest.raises(_ResponseUnset):
        fails()
    assert calls == 3
