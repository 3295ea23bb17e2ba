"""Two admins at once: the one who loses a race gets a form error or a skipped row, never a 500.

The form's unique check and the INSERT are not atomic: both admins' forms can pass the check
before either row is written, and the second INSERT then fails on the unique constraint.  The
other admin is played by a ``pre_save`` receiver that writes the conflicting row right before
ours (on the test's connection, so it is rolled back with ours; the real one stays committed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db.models.signals import post_init, pre_save
from django.test import Client

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

from .test_admin import ADD, FORMS, _data

pytestmark = pytest.mark.django_db

CASES: dict[str, tuple[Any, dict[str, str], dict[str, Any]]] = {
    "limit": (LimitRule, {"name": "api", "rate": "1/s"}, {"rate": "5/s"}),
    "breaker": (BreakerPolicy, {"name": "pricing"}, {}),
    "route": (RouteDeadline, {"route": "/api/", "budget": "1s", "enabled": "on"}, {"budget": "2s"}),
    "shedding": (SheddingRule, {"name": "orders", "max_concurrent": "5"}, {"max_concurrent": 9}),
}


@pytest.fixture
def client(editor: User) -> Client:
    c = Client(raise_request_exception=False)
    c.force_login(editor)
    return c


@pytest.fixture
def other_admin() -> Iterator[list[Any]]:
    """Arm with (model, fields): that row is saved once, right before the next save of model."""
    armed: list[Any] = []

    def save_first(sender: Any, instance: Any, **kwargs: Any) -> None:
        if armed and armed[0][0] is sender:
            model, fields = armed.pop()
            model.objects.create(**fields)

    pre_save.connect(save_first, dispatch_uid="tests.admin.other_admin")
    yield armed
    pre_save.disconnect(dispatch_uid="tests.admin.other_admin")


def _post_data(kind: str, fields: dict[str, str]) -> dict[str, Any]:
    return _data(FORMS[kind], **fields) if kind in FORMS else fields


def _assert_form_error(response: Any) -> None:
    assert response.status_code == 200, response.status_code
    assert "another change to a rule of this name was saved" in response.content.decode()
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_adding_a_name_another_admin_saved_meanwhile_is_a_form_error(
    client: Client, other_admin: list[Any], kind: str
) -> None:
    model, fields, theirs = CASES[kind]
    name_field = "route" if kind == "route" else "name"
    other_admin.append((model, {name_field: fields[name_field], **theirs}))
    _assert_form_error(client.post(ADD[kind], _post_data(kind, fields)))
    assert not other_admin  # the other admin did save first


@pytest.mark.parametrize("kind", sorted(CASES))
def test_renaming_to_a_name_another_admin_saved_meanwhile_is_a_form_error(
    client: Client, other_admin: list[Any], kind: str
) -> None:
    model, fields, theirs = CASES[kind]
    name_field = "route" if kind == "route" else "name"
    old = "/old/" if kind == "route" else "old"
    row = model.objects.create(**{**fields, **theirs, name_field: old, "enabled": True})
    other_admin.append((model, {name_field: fields[name_field], **theirs}))
    change = ADD[kind].replace("/add/", f"/{row.pk}/change/")
    _assert_form_error(client.post(change, _post_data(kind, fields)))
    row.refresh_from_db()
    assert getattr(row, name_field) == old


def test_a_bulk_action_skips_a_row_another_admin_deleted_meanwhile(client: Client) -> None:
    gone = LimitRule.objects.create(name="gone", rate="1/s")
    kept = LimitRule.objects.create(name="kept", rate="1/s")
    armed = [True]

    def delete_once_read(sender: Any, instance: Any, **kwargs: Any) -> None:
        # The other admin deletes "gone" right after this admin's action has read the rows.
        if armed and instance.name == "gone":
            armed.clear()
            LimitRule.objects.filter(pk=instance.pk).delete()

    post_init.connect(delete_once_read, sender=LimitRule, dispatch_uid="tests.admin.delete")
    try:
        response = client.post(
            "/admin/resilience_django/limitrule/",
            {"action": "disable", "_selected_action": [gone.pk, kept.pk]},
            follow=True,
        )
    finally:
        post_init.disconnect(sender=LimitRule, dispatch_uid="tests.admin.delete")
    assert not armed  # the other admin did delete it
    assert response.status_code == 200
    assert "1 limit rules updated." in response.content.decode()
    assert list(LimitRule.objects.values_list("name", "enabled")) == [("kept", False)]
    assert [e.object_id for e in LogEntry.objects.all()] == [str(kept.pk)]
