"""The demo's own Django TestCase suite, as a team would write it: ``manage.py test demo_project``.

It uses ``resilience_django.testing``: each test starts with fresh limits and
breakers (the mixin), a breaker is opened without failing any call
(``force_open``), and limits are switched off where they are not the point.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import TestCase

from resilience_django.testing import ResilienceTestMixin, disable_limits, force_open

BAD_ORDER = b"not json"  # answered 400 by the view, after the limits


class OrderLimitTests(ResilienceTestMixin, TestCase):
    def post_orders(self, n: int) -> list[int]:
        return [
            self.client.post("/api/orders", BAD_ORDER, content_type="application/json").status_code
            for _ in range(n)
        ]

    def test_a_client_gets_a_burst_of_twenty_orders(self) -> None:
        self.assertEqual(self.post_orders(21), [400] * 20 + [429])

    def test_the_next_test_has_its_own_burst(self) -> None:
        # Without the mixin this test would inherit the burst the one above spent.
        self.assertEqual(self.post_orders(20), [400] * 20)

    @disable_limits()
    def test_without_limits_every_order_reaches_the_view(self) -> None:
        self.assertEqual(self.post_orders(30), [400] * 30)


class InventoryOutageTests(ResilienceTestMixin, TestCase):
    def test_an_order_is_refused_fast_while_inventory_is_open(self) -> None:
        force_open("inventory")
        answer = self.client.post(
            "/api/orders", {"trip": "LIS-BER", "seats": 1}, content_type="application/json"
        )
        self.assertEqual(answer.status_code, 503)
        self.assertEqual(answer.json()["reason"], "breaker_open")
        self.assertIn("Retry-After", answer)


class ChaosPageLimitTests(ResilienceTestMixin, TestCase):
    def test_staff_may_turn_knobs_thirty_times_a_minute(self) -> None:
        staff = User.objects.create_user("ops", password="pw", is_staff=True)
        self.client.force_login(staff)
        codes = [self.client.post("/chaos/", {"preset": "calm"}).status_code for _ in range(31)]
        self.assertEqual(codes, [302] * 30 + [429])
