"""The sample project's own pytest suite, on the plugin's fixtures."""

from __future__ import annotations

from django.test import Client

from resilience_django.testing import ManualClock, force_open, trip


def three_orders(client: Client) -> list[int]:
    return [client.get("/orders/").status_code for _ in range(3)]


# The plugin resets before every test: both get their own four a minute.
def test_three_orders_are_taken(client: Client) -> None:
    assert three_orders(client) == [200, 200, 200]


def test_three_more_orders_are_taken_too(client: Client) -> None:
    assert three_orders(client) == [200, 200, 200]


def test_limits_can_be_turned_off(client: Client, resilience_disabled: None) -> None:
    assert three_orders(client) * 2 == [200] * 6


def test_quota_is_back_a_minute_later(client: Client, resilience_clock: ManualClock) -> None:
    assert three_orders(client) + three_orders(client)[:2] == [200] * 4 + [429]
    resilience_clock.advance(61)
    assert three_orders(client) == [200, 200, 200]


def test_price_falls_back_while_pricing_is_open(client: Client) -> None:
    force_open("pricing")
    assert client.get("/orders/").json()["source"] == "fallback"


def test_pricing_is_tried_again_after_open_for(
    client: Client, resilience_clock: ManualClock
) -> None:
    trip("pricing")
    assert client.get("/orders/").json()["source"] == "fallback"
    resilience_clock.advance(31)
    assert client.get("/orders/").json()["source"] == "pricing"
