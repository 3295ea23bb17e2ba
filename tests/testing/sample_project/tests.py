"""The sample project's own TestCase suite (``python -m django test``)."""

from __future__ import annotations

from django.test import TestCase

from resilience_django.testing import (
    ResilienceTestMixin,
    disable_limits,
    force_open,
    trip,
    use_clock,
)


class OrderTests(ResilienceTestMixin, TestCase):
    def three_orders(self) -> list[int]:
        return [self.client.get("/orders/").status_code for _ in range(3)]

    def test_three_orders_are_taken(self) -> None:
        self.assertEqual(self.three_orders(), [200, 200, 200])

    def test_three_more_orders_are_taken_too(self) -> None:
        self.assertEqual(self.three_orders(), [200, 200, 200])

    def test_fifth_order_in_a_minute_is_refused(self) -> None:
        self.assertEqual(self.three_orders() + self.three_orders()[:2], [200] * 4 + [429])

    @disable_limits()
    def test_limits_can_be_turned_off(self) -> None:
        self.assertEqual(self.three_orders() * 2, [200] * 6)

    def test_price_falls_back_while_pricing_is_open(self) -> None:
        force_open("pricing")
        self.assertEqual(self.client.get("/orders/").json()["source"], "fallback")

    def test_pricing_is_tried_again_after_open_for(self) -> None:
        clock = self.enterContext(use_clock())
        trip("pricing")
        self.assertEqual(self.client.get("/orders/").json()["source"], "fallback")
        clock.advance(31)
        self.assertEqual(self.client.get("/orders/").json()["source"], "pricing")
