"""The admin pages: form errors, nothing invalid saved, history, actions, settings read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings

from resilience_django import live
from resilience_django.forms import BreakerPolicyForm, LimitRuleForm, SheddingRuleForm
from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline, SheddingRule

pytestmark = pytest.mark.django_db

ADD = {
    "limit": "/admin/resilience_django/limitrule/add/",
    "breaker": "/admin/resilience_django/breakerpolicy/add/",
    "route": "/admin/resilience_django/routedeadline/add/",
    "shedding": "/admin/resilience_django/sheddingrule/add/",
}
FORMS: dict[str, Any] = {
    "limit": LimitRuleForm,
    "breaker": BreakerPolicyForm,
    "shedding": SheddingRuleForm,
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
        elif value is not None and value is not False:  # a 0 is posted, as "0"
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
        ("shedding", {"name": "o", "max_concurrent": "0"}, "max_concurrent",
         "max_concurrent 0 must be an integer"),
        ("shedding", {"name": "o", "max_concurrent": "5", "queue": "-1"}, "queue",
         "queue -1 must be an integer"),
        ("shedding", {"name": "o", "max_concurrent": "5", "max_wait": "-200ms"}, "max_wait",
         "'-200ms' is not a duration"),
        ("shedding", {"name": "o", "max_concurrent": "5", "critical_share": "1"},
         "critical_share", "up to (not including) 1"),
        ("shedding", {"name": "o", "max_concurrent": "5", "min_concurrent": "9"},
         "min_concurrent", "between 1 and max_concurrent (5)"),
        ("shedding", {"name": "o", "max_concurrent": "5", "critical_paths": "/ok\n^/pay/("},
         "critical_paths", "'^/pay/(' is a regular expression"),
        ("limit", {"name": "api", "rate": "1/s", "path": "^/(a+)+$"}, "path",
         "rules saved in the admin take path prefixes"),
        ("shedding", {"name": "o", "max_concurrent": "5", "critical_header": "X Priority"},
         "critical_header", "must be a header name"),
    ],
)  # fmt: skip
def test_bad_value_is_a_form_error_that_says_what_is_wrong_and_saves_nothing(
    client: Client, kind: str, data: dict[str, Any], field: str, words: str
) -> None:
    form_class = FORMS.get(kind)
    post = _data(form_class, **data) if form_class else {"enabled": "on", **data}
    response = client.post(ADD[kind], post)
    assert response.status_code == 200  # the form again, not a redirect
    form = response.context["adminform"].form
    assert words in " ".join(form.errors[field])
    assert words in response.content.decode().replace("&#x27;", "'")
    assert not LimitRule.objects.exists()
    assert not BreakerPolicy.objects.exists()
    assert not RouteDeadline.objects.exists()
    assert not SheddingRule.objects.exists()
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
                 record=["builtins.ConnectionError", "builtins.TimeoutError"])  # fmt: skip
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
        "SHEDDING": [{"name": "orders", "path": "/api/orders", "max_concurrent": 50,
                      "queue": 100, "max_wait": "200ms", "critical_share": 0.2}],
    }
)  # fmt: skip
@pytest.mark.parametrize(
    ("url", "settings_text", "model", "fields"),
    [
        ("limitrule", "orders-per-ip", LimitRule, {"name": "orders-per-ip", "rate": "5/s"}),
        ("breakerpolicy", "pricing", BreakerPolicy, {"name": "pricing"}),
        ("routedeadline", "800ms", RouteDeadline, {"route": "/api/orders", "budget": "1s"}),
        ("sheddingrule", "20% reserved", SheddingRule, {"name": "orders", "max_concurrent": 5}),
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


# -- shedding rules ----------------------------------------------------------------

CHANGELIST = "/admin/resilience_django/sheddingrule/"


def test_adding_a_shedding_rule_saves_it_logs_it_and_bumps_the_live_version(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    cache.delete(live.VERSION_KEY)
    data = _data(SheddingRuleForm, name="orders", path="/api/orders", max_concurrent="50",
                 queue="100", max_wait="200ms", adaptive=True, min_concurrent="10",
                 critical_share="0.2", critical_paths="/api/orders/checkout",
                 critical_methods=["DELETE"], critical_header="X-Priority")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD["shedding"], data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = SheddingRule.objects.get()
    assert rule.as_setting()["critical_methods"] == ["DELETE"]
    assert (rule.max_concurrent, rule.min_concurrent, rule.adaptive) == (50, 10, True)
    entry = LogEntry.objects.get()
    assert entry.action_flag == ADDITION and entry.object_id == str(rule.pk)
    assert cache.get(live.VERSION_KEY) is not None
    html = client.get(CHANGELIST).content.decode()
    assert "20% reserved" in html and "✔ in force" in html


def test_changing_a_shedding_rule_is_recorded_in_its_history(client: Client) -> None:
    rule = SheddingRule.objects.create(name="orders", max_concurrent=5)
    data = _data(SheddingRuleForm, name="orders", max_concurrent="8", max_wait="100ms")
    response = client.post(f"{CHANGELIST}{rule.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert rule.max_concurrent == 8
    entry = LogEntry.objects.get(action_flag=CHANGE)
    assert "Max concurrent" in entry.get_change_message()
    history = client.get(f"{CHANGELIST}{rule.pk}/history/").content.decode()
    assert "Max concurrent" in history


@pytest.mark.parametrize(("action", "value"), [("disable", False), ("enable", True)])
def test_shedding_rule_bulk_actions_change_each_row_log_it_and_bump(
    client: Client, django_capture_on_commit_callbacks: Any, action: str, value: bool
) -> None:
    a = SheddingRule.objects.create(name="a", max_concurrent=1, enabled=not value)
    b = SheddingRule.objects.create(name="b", max_concurrent=1, enabled=not value)
    cache.delete(live.VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CHANGELIST, {"action": action, "_selected_action": [a.pk, b.pk]})
    assert response.status_code == 302
    assert {r.enabled for r in SheddingRule.objects.all()} == {value}
    entries = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(str(e.object_id) for e in entries) == sorted([str(a.pk), str(b.pk)])
    assert cache.get(live.VERSION_KEY) is not None


def test_shedding_rules_offer_no_shadow_action(client: Client) -> None:
    SheddingRule.objects.create(name="a", max_concurrent=1)
    html = client.get(CHANGELIST).content.decode()
    assert 'value="disable"' in html and 'value="enable"' in html
    assert 'value="shadow"' not in html


@pytest.mark.parametrize(
    ("perms", "allowed"),
    [(("view_sheddingrule",), False), (("view_sheddingrule", "change_sheddingrule"), True)],
)
def test_shedding_rule_actions_need_the_change_permission(
    perms: tuple[str, ...], allowed: bool
) -> None:
    from django.contrib.auth.models import Permission

    rule = SheddingRule.objects.create(name="guarded", max_concurrent=1)
    user = User.objects.create_user("someone", password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    c = Client()
    c.force_login(User.objects.get(pk=user.pk))
    assert c.get(CHANGELIST).status_code == 200
    c.post(CHANGELIST, {"action": "disable", "_selected_action": [rule.pk]})
    rule.refresh_from_db()
    assert rule.enabled is not allowed
    assert LogEntry.objects.exists() is allowed


def test_staff_without_shedding_permissions_cannot_see_or_add_rules() -> None:
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    c = Client()
    c.force_login(user)
    assert c.get(CHANGELIST).status_code == 403
    data = _data(SheddingRuleForm, name="sneaky", max_concurrent="1", max_wait="100ms")
    assert c.post(ADD["shedding"], data).status_code == 403
    assert not SheddingRule.objects.exists()


@override_settings(
    RESILIENCE={"SHEDDING": [{"name": "broken", "max_concurrent": 0}, {"name": "ok",
                                                                         "max_concurrent": 2}]}
)  # fmt: skip
def test_a_settings_shedding_rule_that_fails_its_check_is_listed_as_not_in_force(
    client: Client,
) -> None:
    html = client.get(CHANGELIST).content.decode()
    section = html[html.index('id="settings-rules"') :]
    assert "Not in force" in section and "E073" in section
    assert "<td>ok</td>" in section
