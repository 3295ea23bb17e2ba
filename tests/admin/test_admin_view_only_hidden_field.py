"""The form's hidden ``seen_updated_at`` is no row on a view-only change page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from .test_admin_view_only import ROWS

pytestmark = pytest.mark.django_db


def _staff(kind: str, *actions: str) -> Client:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    for action in actions:
        user.user_permissions.add(Permission.objects.get(codename=f"{action}_{kind}"))
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.get(pk=user.pk))
    return client


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_view_only_staff_see_no_seen_updated_at_row_and_editors_keep_the_hidden_input(
    kind: str,
) -> None:
    model, fields, shown = ROWS[kind]
    url = f"/admin/resilience_django/{kind}/{model.objects.create(**fields).pk}/change/"

    viewed = _staff(kind, "view").get(url).content.decode()

    assert shown in viewed and "updated_at" in viewed  # the History rows stay
    assert "seen_updated_at" not in viewed and "Seen updated at" not in viewed
    User.objects.all().delete()
    edited = _staff(kind, "view", "change").get(url).content.decode()
    assert 'type="hidden" name="seen_updated_at"' in edited
