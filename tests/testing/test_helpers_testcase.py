"""``resilience_django.testing`` in Django ``TestCase`` suites: the mixin, the switch, the clock.

The leak these guard against: a class-level ``override_settings`` is applied
once per class, so without a reset the second test of a class inherits the
quota the first one spent (a 4/m rule, three requests each: ``[200, 429, 429]``).
"""

from __future__ import annotations

from django.test import SimpleTestCase, TestCase, override_settings

from resilience_django.testing import (
    ResilienceTestMixin,
    disable_limits,
    force_open,
    use_clock,
)

FOUR_PER_MINUTE = {"LIMITS": [{"name": "four", "path": "/hello/", "key": "ip", "rate": "4/m"}]}
IP = "10.78.0.1"


class _ThreeRequests:
    client: object

    def three(self) -> list[int]:
        return [self.client.get("/hello/", REMOTE_ADDR=IP).status_code for _ in range(3)]  # type: ignore[attr-defined]


@override_settings(RESILIENCE=FOUR_PER_MINUTE)
class MixinGivesEachTestAFreshQuotaTests(ResilienceTestMixin, _ThreeRequests, TestCase):
    # Both tests spend three of the four: whichever runs second still gets 200s.
    def test_first_three_requests_are_admitted(self) -> None:
        self.assertEqual(self.three(), [200, 200, 200])

    def test_second_three_requests_are_admitted_too(self) -> None:
        self.assertEqual(self.three(), [200, 200, 200])

    def test_breaker_forced_open_by_one_test(self) -> None:
        force_open("testcase-dep")
        self.assertEqual(self.client.get("/dependency/?name=testcase-dep").status_code, 503)

    def test_breaker_is_closed_again_in_the_next(self) -> None:
        self.assertEqual(self.client.get("/dependency/?name=testcase-dep").status_code, 200)


@override_settings(RESILIENCE={"LIMITS": [{"name": "one", "path": "/hello/", "rate": "1/m"}]})
@disable_limits()
class DisabledLimitsTests(_ThreeRequests, SimpleTestCase):
    def test_every_request_is_admitted(self) -> None:
        self.assertEqual(self.three(), [200, 200, 200])


@override_settings(RESILIENCE={"LIMITS": [{"name": "one", "path": "/hello/", "rate": "1/m"}]})
class ClockInTestCaseTests(ResilienceTestMixin, TestCase):
    def test_a_minute_later_the_quota_is_back(self) -> None:
        clock = self.enterContext(use_clock())
        self.assertEqual(self.client.get("/hello/", REMOTE_ADDR=IP).status_code, 200)
        self.assertEqual(self.client.get("/hello/", REMOTE_ADDR=IP).status_code, 429)
        clock.advance(61)
        self.assertEqual(self.client.get("/hello/", REMOTE_ADDR=IP).status_code, 200)
