"""Rates read back as the settings write them, wherever they are shown."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.models import LimitRule
from resilience_django.units import Rate, parse_rate


@pytest.mark.parametrize(
    ("written", "shown"),
    [("100/m", "100/m"), ("100/60s", "100/m"), ("100/minute", "100/m"), ("10/s", "10/s"),
     ("5000/h", "5000/h"), ("5000/3600s", "5000/h"), ("1/d", "1/d"), ("100/30s", "100/30s"),
     ("9/120s", "9/2m"), ("5/90m", "5/90m"), ("7/1.5s", "7/1500ms"), ("2/500ms", "2/500ms")],
)  # fmt: skip
def test_a_rate_shows_in_the_largest_whole_unit(written: str, shown: str) -> None:
    assert str(parse_rate(written)) == shown


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=365),
    st.sampled_from(["ms", "s", "m", "h", "d"]),
)
def test_a_shown_rate_parses_back_to_the_same_rate(limit: int, count: int, unit: str) -> None:
    rate = parse_rate(f"{limit}/{count}{unit}")
    assert parse_rate(str(rate)) == rate


def test_an_admin_rate_is_saved_as_it_is_shown(db: None) -> None:
    rule = LimitRule(name="api", rate="100/minute")
    rule.full_clean()
    assert rule.rate == "100/m"


@override_settings(RESILIENCE={"LIMITS": [{"name": "orders", "rate": "100/60s"}]})
def test_settings_and_admin_rules_show_the_same_rate_in_the_changelist(
    admin_client: Client,
) -> None:
    LimitRule.objects.create(name="partners", rate="100/60s")  # saved around the form
    page = admin_client.get("/admin/resilience_django/limitrule/").content.decode()
    assert page.count("100/m<") == 2  # the admin row's column and the settings table's
    assert "100/60s" not in page
    assert str(Rate(100, 60.0)) == "100/m"
