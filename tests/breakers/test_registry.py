from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from resilience_django.breakers import events
from resilience_django.breakers.registry import all_breakers, get_breaker, registry
from resilience_django.signals import breaker_state_changed


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


@override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 2}}})
def test_configured_breakers_use_their_settings_and_others_the_defaults() -> None:
    assert get_breaker("pricing").policy.failure_threshold == 2
    assert get_breaker("other").policy.failure_threshold == 5
    assert get_breaker("pricing") is get_breaker("pricing")
    assert [b.name for b in all_breakers()] == ["other", "pricing"]


def test_changed_settings_reconfigure_existing_breakers_in_place() -> None:
    with override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 2}}}):
        b = get_breaker("pricing")
        assert b.policy.failure_threshold == 2
        with override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 7}}}):
            assert b.policy.failure_threshold == 7
            assert get_breaker("pricing") is b


@override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 0}}})
def test_bad_settings_at_run_time_fall_back_to_defaults_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="resilience_django.breakers"):
        b = get_breaker("pricing")
    assert b.policy.failure_threshold == 5
    assert "breaker pricing: bad settings" in caplog.text


@override_settings(RESILIENCE={"BREAKERS": {"pricing": {"failure_threshold": 1}}})
def test_state_changes_send_the_django_signal_from_the_listener_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        received.append(kwargs)

    def broken(sender: object, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    breaker_state_changed.connect(receiver)
    breaker_state_changed.connect(broken)
    try:
        b = get_breaker("pricing")
        b.record_failure(b.acquire())
        assert events.flush()
    finally:
        breaker_state_changed.disconnect(receiver)
        breaker_state_changed.disconnect(broken)
    assert [(r["name"], r["from_state"], r["to_state"]) for r in received] == [
        ("pricing", "closed", "open")
    ]
    assert "receiver bug" in caplog.text


def test_a_broken_fleet_store_never_fails_the_caller_that_makes_a_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from resilience_django.breakers.registry import BreakerRegistry

    def broken(breaker: object) -> None:
        raise RuntimeError("FLEET['CACHE'] names no cache")

    fresh = BreakerRegistry()
    fresh.on_create(broken)
    breaker = fresh.get("made-despite-fleet")
    assert breaker.name == "made-despite-fleet"
    assert "could not join the fleet" in caplog.text


@override_settings(
    RESILIENCE={"BREAKERS": {"quiet": {"mode": "disabled"}, "watch": {"mode": "metrics_only"}}}
)
def test_a_new_breaker_that_never_opens_shows_closed_on_the_state_gauge_at_once() -> None:
    from tests.observability.scrape import value

    for name in ("quiet", "watch"):
        get_breaker(name)
        # 0 is closed; the gauge used to read "open" until the events thread caught up.
        assert value("resilience_breaker_state", breaker=name) == 0
