"""A breaker inside another breaker's call: the inner one refusing (``CircuitOpen``) is no verdict
on the outer dependency, so one open dependency does not open everything above it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from resilience_django.breakers.api import breaker
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import CircuitOpen

POLICY = {"failure_threshold": 2, "half_open_calls": 1, "open_for": "60s"}


@pytest.fixture(autouse=True)
def _policies() -> Iterator[None]:
    breakers = {"nested-inner": POLICY, "nested-outer": POLICY}
    registry.clear()
    with override_settings(RESILIENCE={"BREAKERS": breakers}):
        yield
    registry.clear()


def test_an_inner_circuit_open_does_not_count_against_the_outer_breaker() -> None:
    inner = breaker("nested-inner")
    inner.breaker.force_open()

    @breaker("nested-outer")
    def outer() -> None:
        with inner:
            pass

    for _ in range(5):
        with pytest.raises(CircuitOpen) as caught:
            outer()
        assert caught.value.name == "nested-inner"
    assert registry.get("nested-outer").state == "closed"


async def test_an_inner_circuit_open_in_an_async_block_is_no_verdict_either() -> None:
    inner = breaker("nested-inner")
    inner.breaker.force_open()
    outer = breaker("nested-outer")
    for _ in range(5):
        with pytest.raises(CircuitOpen):
            async with outer, inner:
                pass
    assert outer.breaker.state == "closed"


def test_an_outer_half_open_trial_ended_by_an_inner_circuit_open_gives_its_slot_back() -> None:
    outer = breaker("nested-outer")
    b = outer.breaker
    for _ in range(2):
        b.record_failure(b.acquire())
    assert b.state == "open"
    b._phase.until = 0.0  # open_for elapsed
    inner = breaker("nested-inner")
    inner.breaker.force_open()
    with pytest.raises(CircuitOpen), outer, inner:
        pass
    assert b.state == "half_open"
    with outer:  # the slot is free again: a real trial runs and closes it
        pass
    assert b.state == "closed"
