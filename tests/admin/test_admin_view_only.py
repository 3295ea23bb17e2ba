"""Staff with only the view permission of a rule kind read its rules; they change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

pytestmark = pytest.mark.django_db

ROWS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "limitrule": (LimitRule, {"name": "api", "rate": "7/s", "key": "header:X-Tenant"}, "7/s"),
    "breakerpolicy": (BreakerPolicy, {"name": "pricing", "open_for": "17s"}, "17s"),
    "routedeadline": (RouteDeadline, {"route": "/api/", "budget": "3s"}, "3s"),
    "sheddingrule": (SheddingRule, {"name": "orders", "max_concurrent": 37}, "37"),
}


def _viewer(kind: str) -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename=f"view_{kind}"))
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.get(pk=user.pk))
    return client


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_view_only_staff_see_the_change_page_read_only_and_a_post_is_refused(kind: str) -> None:
    model, fields, shown = ROWS[kind]
    row = model.objects.create(**fields)
    client = _viewer(kind)
    url = f"/admin/resilience_django/{kind}/{row.pk}/change/"

    page = client.get(url)

    assert page.status_code == 200
    html = page.content.decode()
    assert shown in html and 'name="_save"' not in html
    assert client.post(url, {**fields, "notes": "mine"}).status_code == 403
    row.refresh_from_db()
    assert row.notes == ""
