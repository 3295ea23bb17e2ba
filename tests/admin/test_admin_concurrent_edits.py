"""Two operators edit one rule: the second save, made over the first one's change, is refused
with a form error naming the rule, and nothing of it is saved (optimistic concurrency on
``updated_at``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.forms import CheckboxInput
from django.test import Client

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

pytestmark = pytest.mark.django_db

# kind -> (model, row, field, first operator's value, second operator's value)
CASES: dict[str, tuple[Any, dict[str, Any], str, str, str]] = {
    "limitrule": (LimitRule, {"name": "api", "rate": "1/s"}, "rate", "5/s", "7/s"),
    "breakerpolicy": (BreakerPolicy, {"name": "pricing"}, "open_for", "10s", "20s"),
    "routedeadline": (RouteDeadline, {"route": "/api/", "budget": "1s"}, "budget", "2s", "3s"),
    "sheddingrule": (SheddingRule, {"name": "orders", "max_concurrent": 5}, "max_concurrent",
                     "8", "9"),
}  # fmt: skip


def _operator(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _open(client: Client, url: str) -> dict[str, Any]:
    """What the browser posts back for the change form as it was opened."""
    response = client.get(url)
    assert response.status_code == 200
    assert 'name="seen_updated_at"' in response.content.decode()  # rendered, hidden
    form = response.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, CheckboxInput):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_save_over_a_change_made_since_the_form_was_opened_is_refused(
    editor: User, kind: str
) -> None:
    model, fields, field, first, second = CASES[kind]
    row = model.objects.create(**fields)
    url = f"/admin/resilience_django/{kind}/{row.pk}/change/"
    alice, bob = _operator(editor), _operator(editor)
    alice_form, bob_form = _open(alice, url), _open(bob, url)

    assert bob.post(url, {**bob_form, field: first}).status_code == 302
    response = alice.post(url, {**alice_form, field: second})

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert len(errors) == 1, errors
    assert "someone else changed" in errors[0] and str(model.objects.get()) in errors[0]
    row.refresh_from_db()
    assert str(getattr(row, field)) == first  # Bob's change stands, nothing of Alice's saved

    # Opened again, the form carries the new updated_at: her save goes through.
    assert alice.post(url, {**_open(alice, url), field: second}).status_code == 302
    row.refresh_from_db()
    assert str(getattr(row, field)) == second


def test_a_post_without_the_hidden_value_is_saved_as_before(editor: User) -> None:
    # Scripts that post the fields they know (no seen_updated_at) keep working.
    row = LimitRule.objects.create(name="api", rate="1/s")
    url = f"/admin/resilience_django/limitrule/{row.pk}/change/"
    client = _operator(editor)
    data = {k: v for k, v in _open(client, url).items() if k != "seen_updated_at"}
    assert client.post(url, {**data, "rate": "5/s"}).status_code == 302
    row.refresh_from_db()
    assert row.rate == "5/s"
