"""Admin rows take path prefixes and URL names, never regexes.

A regex such as ``^/(a+)+$`` costs exponential time per request; admin users
are trusted with values, not with code, so only settings (reviewed as code)
may hold regexes.  The form refuses one; a regex row saved before this rule
existed (or written around the admin) is left out at reload, the rest loads.
"""

from __future__ import annotations

import logging

import pytest

from resilience_django import live
from resilience_django.models import LimitRule, RouteDeadline, SheddingRule

pytestmark = pytest.mark.django_db

CATASTROPHIC = "^/(a+)+$"


def test_limit_rule_with_a_regex_path_is_refused_with_a_clear_error() -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        LimitRule(name="api", rate="10/s", path=CATASTROPHIC).full_clean()
    (message,) = caught.value.message_dict["path"]
    assert "is a regular expression" in message and "prefix" in message
    assert "(resilience.E027)" in message


def test_stored_regex_rows_are_left_out_at_reload_and_the_rest_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    LimitRule.objects.create(name="good", path="/api/", rate="5/s")
    # Rows saved around the form's validation, as before admin regexes were refused.
    LimitRule.objects.create(name="regex", path=CATASTROPHIC, rate="5/s")
    SheddingRule.objects.create(name="shed-good", path="/api/", max_concurrent=5)
    SheddingRule.objects.create(name="shed-regex", path=CATASTROPHIC, max_concurrent=5)
    SheddingRule.objects.create(
        name="shed-critical", path="/x/", max_concurrent=5, critical_paths=f"/ok\n{CATASTROPHIC}"
    )
    RouteDeadline.objects.create(route="/api/orders", budget="800ms")
    RouteDeadline.objects.create(route=CATASTROPHIC, budget="800ms")
    with caplog.at_level(logging.ERROR, logger="resilience_django.live"):
        live.reload_now()
    rules = live.admin_rules()
    assert [r.name for r in rules.limit_rules] == ["good"]
    assert [r.name for r in rules.shedding_rules] == ["shed-good"]
    assert [b.label for b in rules.route_budgets] == ["/api/orders"]
    assert caplog.text.count("is a regular expression") == 4
