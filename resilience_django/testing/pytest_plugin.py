"""pytest fixtures; register in ``conftest.py``::

    pytest_plugins = ["resilience_django.testing.pytest_plugin"]

Registered, every test starts from a fresh process state (the autouse reset),
and these fixtures are available:

* ``resilience_reset``: the ``reset`` function, to start afresh within a test;
* ``resilience_clock``: a :class:`ManualClock` the package runs on for the test;
* ``resilience_disabled``: limits and shedding off for the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .clock import ManualClock, use_clock
from .reset import reset
from .switch import disable_limits

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
