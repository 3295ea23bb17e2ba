"""The admin pages: form errors, nothing invalid saved, history, actions, settings read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings

from resilience_django import live
from resilience_django.forms import BreakerPolicyForm, LimitRuleForm
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline

pytestmark = pytest.mark.django_db

ADD = {
    "limit": "/admin/resilience_django/limitrule/add/",
    "breaker": "/admin/resilience_django/breakerpolicy/add/",
    "route": "/admin/resilience_django/routedeadline/add/",
}


def _data(form_class: Any, **overrides: Any) -> dict[str, Any]:
    """What a browser posts for an untouched add form, with ``overrides``."""
    form = form_class()
    values = {**{name: field.initial for name, field in form.fields.items()}, **overrides}
    data: dict[str, Any] = {}
    for name in form_class._meta.fields:
        value = values.get(name)
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    return data


@pytest.fixture
def client(editor: User) -> Client:
    c = Client()
    c.force_login(editor)
    return c


@pytest.mark.parametrize(
    ("kind", "data", "field", "words"),
    [
        ("limit", {"name": "api", "rate": "10/x"}, "rate", "'10/x' is not a rate"),
        ("limit", {"name": "api", "rate": "1/s", "key": "magic"}, "key", "not a known key"),
        ("limit", {"name": "api", "rate": "1/s", "path": "^/a/("}, "path", "regular expression"),
        ("breaker", {"name": "pricing", "open_for": "-5s"}, "open_for", "open_for"),
        ("breaker", {"name": "pricing", "error_rate": "2"}, "error_rate", "(0, 1]"),
        ("route", {"route": "/api/", "budget": "-800ms"}, "budget", "not a duration"),
        ("route", {"route": "^/api/(", "budget": "1s"}, "route", "regular expression"),
    ],
)
def test_bad_value_is_a_form_error_that_says_what_is_wrong_and_saves_nothing(
    client: Client, kind: str, data: dict[str, Any], field: str, words: str
) -> None:
    form_class = {"limit": LimitRuleForm, "breaker": BreakerPolicyForm}.get(kind)
    post = _data(form_class, **data) if form_class else {"enabled": "on", **data}
    response = client.post(ADD[kind], post)
    assert response.status_code == 200  # the form again, not a redirect
    form = response.context["adminform"].form
    assert words in " ".join(form.errors[field])
    assert words in response.content.decode().replace("&#x27;", "'")
    assert not LimitRule.objects.exists()
    assert not BreakerPolicy.objects.exists()
    assert not RouteDeadline.objects.exists()
    assert not LogEntry.objects.exists()


def test_adding_a_rule_saves_it_logs_it_and_bumps_the_live_version(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    cache.delete(live.VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            ADD["limit"],
            _data(LimitRuleForm, name="api", rate="100/m", path="/api/", methods=["POST"]),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = LimitRule.objects.get()
    assert rule.methods == "POST"
    entry = LogEntry.objects.get()
    assert entry.action_flag == ADDITION and entry.object_id == str(rule.pk)
    assert cache.get(live.VERSION_KEY) is not None


def test_a_full_breaker_policy_form_round_trips(client: Client) -> None:
    data = _data(BreakerPolicyForm, name="pricing", slow_call="2s", slow_call_rate="0.5",
                 record="builtins.ConnectionError\nbuiltins.TimeoutError")  # fmt: skip
    response = client.post(ADD["breaker"], data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert BreakerPolicy.objects.get().as_setting()["record"] == [
        "builtins.ConnectionError",
        "builtins.TimeoutError",
    ]


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [("disable", "enabled", False), ("shadow", "mode", "shadow"), ("enable", "enabled", True)],
)
def test_bulk_action_changes_each_row_logs_it_and_bumps(
    client: Client,
    django_capture_on_commit_callbacks: Any,
    action: str,
    field: str,
    value: Any,
) -> None:
    a = LimitRule.objects.create(name="a", rate="1/s", enabled=action == "disable")
    b = LimitRule.objects.create(name="b", rate="1/s", enabled=action == "disable")
    cache.delete(live.VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/resilience_django/limitrule/",
            {"action": action, "_selected_action": [a.pk, b.pk]},
        )
    assert response.status_code == 302
    assert {getattr(r, field) for r in LimitRule.objects.all()} == {value}
    entries = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(str(e.object_id) for e in entries) == sorted([str(a.pk), str(b.pk)])
    assert cache.get(live.VERSION_KEY) is not None


def test_shadow_action_on_breaker_policies_means_metrics_only(client: Client) -> None:
    p = BreakerPolicy.objects.create(name="pricing")
    client.post(
        "/admin/resilience_django/breakerpolicy/", {"action": "shadow", "_selected_action": [p.pk]}
    )
    p.refresh_from_db()
    assert p.mode == "metrics_only"


@override_settings(
    RESILIENCE={
        "LIMITS": [{"name": "orders-per-ip", "path": "/api/orders", "rate": "100/m"}],
        "BREAKERS": {"pricing": {"failure_threshold": 3}},
        "DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/api/orders": "800ms"}},
    }
)
@pytest.mark.parametrize(
    ("url", "settings_text", "model", "fields"),
    [
        ("limitrule", "orders-per-ip", LimitRule, {"name": "orders-per-ip", "rate": "5/s"}),
        ("breakerpolicy", "pricing", BreakerPolicy, {"name": "pricing"}),
        ("routedeadline", "800ms", RouteDeadline, {"route": "/api/orders", "budget": "1s"}),
    ],
)
def test_changelist_shows_settings_rules_read_only_and_marks_the_conflict(
    client: Client, url: str, settings_text: str, model: Any, fields: dict[str, Any]
) -> None:
    model.objects.create(**fields)
    html = client.get(f"/admin/resilience_django/{url}/").content.decode()
    section = html[html.index('id="settings-rules"') :]
    assert "Defined in settings (read-only)" in section
    assert settings_text in section
    assert "<input" not in section  # read-only: nothing to edit there
    assert "overridden by settings" in html


def test_dashboard_is_linked_from_the_app_index(viewer: User) -> None:
    c = Client()
    c.force_login(viewer)
    html = c.get("/admin/resilience_django/").content.decode()
    assert 'href="/admin/resilience_django/breakerdashboard/"' in html
    assert "Breaker dashboard" in html


@pytest.mark.django_db
def test_staff_who_may_only_view_rules_cannot_run_bulk_actions() -> None:
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    from resilience_django.models import LimitRule

    rule = LimitRule.objects.create(name="guarded-by-perms", rate="5/s")
    user = User.objects.create_user("looker", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_limitrule"))
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    client.post(
        "/admin/resilience_django/limitrule/",
        {"action": "disable", "_selected_action": [rule.pk]},
    )
    rule.refresh_from_db()
    assert rule.enabled is True
