"""The chaos knobs themselves: validated, stored shared, and harmless when corrupt."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from demo_project.orders import chaos


@pytest.fixture(autouse=True)
def _clean_cache() -> None:
    cache.clear()


def test_knobs_outside_their_range_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        chaos.Knobs(latency=chaos.MAX_LATENCY + 1)
    with pytest.raises(ValueError, match="error_rate"):
        chaos.Knobs(error_rate=1.5)


def test_set_knobs_are_read_back_sync_and_async() -> None:
    chaos.set_knobs("pricing", chaos.Knobs(latency=0.5, outage=True))
    assert chaos.knobs("pricing") == chaos.Knobs(latency=0.5, outage=True)
    assert chaos.knobs("inventory").calm


async def test_async_read_sees_what_was_set() -> None:
    chaos.set_knobs("risk", chaos.Knobs(error_rate=0.25))
    assert await chaos.aknobs("risk") == chaos.Knobs(error_rate=0.25)


def test_calm_knobs_leave_nothing_in_the_cache() -> None:
    chaos.set_knobs("pricing", chaos.Knobs(outage=True))
    chaos.set_knobs("pricing", chaos.Knobs())
    assert cache.get("demo-chaos:pricing") is None


def test_a_corrupt_entry_reads_as_calm_instead_of_failing() -> None:
    cache.set("demo-chaos:pricing", {"latency": "slow", "outage": True})
    assert chaos.knobs("pricing").calm
    cache.set("demo-chaos:pricing", {"latency": 99.0})  # out of range
    assert chaos.knobs("pricing").calm


def test_unknown_services_cannot_be_set() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        chaos.set_knobs("billing", chaos.Knobs(outage=True))
