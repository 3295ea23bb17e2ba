"""pytest fixtures; with ``pytest_plugins = ["resilience_django.testing.pytest_plugin"]`` in
``conftest.py``, every test starts from a fresh process state (docs/testing.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from . import ManualClock, disable_limits, reset, use_clock

__all__ = ["resilience_clock", "resilience_disabled", "resilience_reset"]


@pytest.fixture(autouse=True)
def _resilience_fresh_state() -> None:
    # Before the test, not after: a test that fails half-way must not leak
    # into the next one, and the first test must not inherit import-time state.
    reset()


@pytest.fixture
def resilience_reset() -> Callable[[], None]:
    """``reset()``: every limiter, bulkhead, breaker and budget fresh, when the test says so."""
    return reset


@pytest.fixture
def resilience_clock() -> Iterator[ManualClock]:
    """The clock limits, bulkheads, breakers and deadlines read during the test."""
    with use_clock() as clock:
        yield clock


@pytest.fixture
def resilience_disabled() -> Iterator[None]:
    """Rate limits and load shedding off for the test."""
    with disable_limits():
        yield
