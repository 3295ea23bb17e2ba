"""The admin form refuses a name the settings use, and shows every problem of a rule at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from resilience_django.forms import BreakerPolicyForm, LimitRuleForm, SheddingRuleForm
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

from .test_admin import ADD, _data

pytestmark = pytest.mark.django_db

SETTINGS = {
    "LIMITS": [{"name": "orders-per-ip", "rate": "100/m"}],
    "BREAKERS": {"pricing": {"failure_threshold": 5}},
    "DEADLINE": {"ROUTES": {"/api/orders": "800ms"}},
    "SHEDDING": [{"name": "orders", "max_concurrent": 5}],
}


@pytest.fixture
def client(editor: User) -> Client:
    c = Client()
    c.force_login(editor)
    return c


@override_settings(RESILIENCE=SETTINGS)
@pytest.mark.parametrize(
    ("kind", "post", "field"),
    [
        ("limit", _data(LimitRuleForm, name="orders-per-ip", rate="5/m"), "name"),
        ("breaker", _data(BreakerPolicyForm, name="pricing"), "name"),
        ("route", {"route": "/api/orders", "budget": "300ms", "enabled": "on"}, "route"),
        ("shedding", _data(SheddingRuleForm, name="orders", max_concurrent="3"), "name"),
    ],
)
def test_a_name_the_settings_use_is_refused_with_a_clear_message(
    client: Client, kind: str, post: dict[str, Any], field: str
) -> None:
    response = client.post(ADD[kind], post)
    assert response.status_code == 200  # the form again, not saved
    errors = " ".join(response.context["adminform"].form.errors[field])
    assert "settings (RESILIENCE) already define" in errors and "never be in force" in errors
    for model in (LimitRule, BreakerPolicy, RouteDeadline, SheddingRule):
        assert not model.objects.exists()


@override_settings(RESILIENCE=SETTINGS)
def test_another_name_is_saved(client: Client) -> None:
    response = client.post(ADD["limit"], _data(LimitRuleForm, name="orders-per-key", rate="5/m"))
    assert response.status_code == 302
    assert LimitRule.objects.get().name == "orders-per-key"


def test_every_problem_of_a_shedding_rule_is_shown_on_its_field(client: Client) -> None:
    post = _data(SheddingRuleForm, name="o", max_concurrent="5", queue="-1", max_wait="soon")
    response = client.post(ADD["shedding"], post)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "queue -1 must be an integer" in " ".join(errors["queue"])
    assert "not a duration" in " ".join(errors["max_wait"])
