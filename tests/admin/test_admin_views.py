"""The dashboard page and its JSON endpoint: permissions, CSRF, actions, history, aggregation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.test import Client, override_settings

from resilience_django import admin_views, metrics
from resilience_django.admin_views.state import RateHistory, aggregate_breakers, history
from resilience_django.breakers.registry import get_breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import fleet_processes

DASHBOARD = "/admin/resilience_django/breakerdashboard/"
API = DASHBOARD + "api/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_fleet(fresh_breakers: None) -> Iterator[None]:
    # No fleet store: the snapshot is this process's breakers, commands apply at once.
    config = {"FLEET": {"ENABLED": False}, "BREAKERS": {"pricing": {"failure_threshold": 2}}}
    with override_settings(RESILIENCE=config):
        get_breaker("pricing")
        yield


def _client(user: User | None, *, csrf: bool = False) -> Client:
    c = Client(enforce_csrf_checks=csrf)
    if user is not None:
        c.force_login(user)
    return c


def _force_open(c: Client, token: str | None = None) -> int:
    body = json.dumps({"updateState": "FORCE_OPEN"})
    headers = {"X-CSRFToken": token} if token else {}
    response = c.post(API + "pricing/", body, content_type="application/json", headers=headers)
    return response.status_code


@pytest.mark.parametrize("url", [DASHBOARD, API, API + "pricing/"])
def test_anonymous_is_sent_to_the_login_page(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_anonymous_post_is_sent_to_login_and_changes_nothing() -> None:
    assert _force_open(Client()) == 302
    assert get_breaker("pricing").state == "closed"


def test_staff_without_any_view_permission_is_refused() -> None:
    bare = User.objects.create_user("bare", password="pw", is_staff=True)
    assert _client(bare).get(DASHBOARD).status_code == 403
    assert _client(bare).get(API).status_code == 403


@pytest.mark.parametrize(
    "codename", ["view_limitrule", "view_breakerpolicy", "view_routedeadline", "view_sheddingrule"]
)
def test_any_of_the_apps_view_permissions_shows_the_dashboard(codename: str) -> None:
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("looker", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename=codename))
    c = _client(User.objects.get(pk=user.pk))
    assert c.get(DASHBOARD).status_code == 200
    assert _force_open(c) == 403


def test_viewer_sees_the_dashboard_and_state_but_actions_are_refused(viewer: User) -> None:
    c = _client(viewer)
    page = c.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Breaker dashboard" in html and "pricing" in html
    state = c.get(API).json()
    assert [b["name"] for b in state["breakers"]] == ["pricing"]
    assert state["can_operate"] is False
    assert _force_open(c) == 403
    assert get_breaker("pricing").state == "closed"
    assert not LogEntry.objects.exists()


def test_operator_forces_open_and_the_action_is_in_the_admin_history(operator: User) -> None:
    c = _client(operator)
    assert c.get(API).json()["can_operate"] is True
    assert _force_open(c) == 200
    assert get_breaker("pricing").state == "forced_open"
    entry = LogEntry.objects.get()
    assert entry.user == operator and entry.action_flag == CHANGE
    assert entry.object_id == "pricing" and "Forced open" in entry.change_message
    # "Recent actions" on the admin index lists it (without a link: there is no object page).
    index = c.get("/admin/").content.decode()
    assert "breaker pricing" in index


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"updateState": "CLOSE"}, "closed"),
        ({"action": "reset"}, "closed"),
        ({"updateState": "DISABLE"}, "disabled"),
    ],
)
def test_each_action_reaches_the_breaker(operator: User, body: dict[str, str], state: str) -> None:
    get_breaker("pricing").force_open()
    c = _client(operator)
    response = c.post(API + "pricing/", json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert get_breaker("pricing").state == state


def test_form_encoded_action_works_too(operator: User) -> None:
    assert _client(operator).post(API + "pricing/", {"action": "force_open"}).status_code == 200
    assert get_breaker("pricing").state == "forced_open"


def test_unknown_action_and_unknown_breaker_are_refused(operator: User) -> None:
    c = _client(operator)
    bad = c.post(API + "pricing/", json.dumps({"updateState": "EXPLODE"}), "application/json")
    assert bad.status_code == 400
    assert c.post(API + "nosuch/", {"action": "reset"}).status_code == 404
    assert c.get(API + "nosuch/").status_code == 404
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("method", ["head", "options", "put", "patch", "delete"])
def test_other_methods_are_405_with_allow_and_change_nothing(operator: User, method: str) -> None:
    c = _client(operator)
    for url, allow in ((API, "GET"), (API + "pricing/", "GET, POST")):
        response = getattr(c, method)(url, {"action": "force_open"})
        assert response.status_code == 405
        assert response["Allow"] == allow
    assert c.post(API, {"action": "force_open"})["Allow"] == "GET"
    assert get_breaker("pricing").state == "closed"
    assert not LogEntry.objects.exists()


def test_a_deeply_nested_json_body_is_a_400_not_a_500(operator: User) -> None:
    # json.loads raises RecursionError (not a ValueError) past the interpreter's stack depth.
    c = Client(raise_request_exception=False)
    c.force_login(operator)
    for body in ("[" * 100_000, '{"updateState": ' * 100_000):
        response = c.post(API + "pricing/", body, content_type="application/json")
        assert response.status_code == 400
        assert "updateState" in response.json()["error"]
    assert get_breaker("pricing").state == "closed"
    assert not LogEntry.objects.exists()


def test_csrf_is_enforced_on_actions(operator: User) -> None:
    c = _client(operator, csrf=True)
    assert _force_open(c) == 403
    assert get_breaker("pricing").state == "closed"
    c.get(DASHBOARD)  # sets the CSRF cookie, as the page does for its script
    token = c.cookies["csrftoken"].value
    assert _force_open(c, token) == 200
    assert get_breaker("pricing").state == "forced_open"


def test_one_breaker_endpoint_gives_its_fleet_summary(viewer: User) -> None:
    breaker = get_breaker("pricing")
    for _ in range(2):
        token = breaker.acquire()
        breaker.record_failure(token, exc=RuntimeError("down"))
    data = _client(viewer).get(API + "pricing/").json()
    assert data["state"] == "open"
    assert data["last_transition"]["to"] == "open"
    assert data["retry_after"] > 0
    assert len(data["processes"]) == 1


def test_aggregate_shows_the_worst_state_and_fleet_wide_rates() -> None:
    rows = [
        {"name": "p", "host": "a", "pid": 1, "state": "closed", "calls": 30, "failures": 3,
         "slow": 0, "ewma": 0.1, "rejected": 0, "retry_after": 0.0,
         "last_transition": {"from": "open", "to": "closed", "reason": "r1", "at": 10.0}},
        {"name": "p", "host": "b", "pid": 2, "state": "open", "calls": 10, "failures": 9,
         "slow": 4, "ewma": 0.8, "rejected": 5, "retry_after": 12.5,
         "last_transition": {"from": "closed", "to": "open", "reason": "r2", "at": 20.0}},
    ]  # fmt: skip
    (summary,) = aggregate_breakers(rows)
    assert summary["state"] == "open"
    assert summary["states"] == {"closed": 1, "open": 1}
    assert summary["calls"] == 40 and summary["failure_rate"] == 0.3
    assert summary["error_rate"] == 1.0  # open: every call refused
    assert summary["slow_rate"] == 0.1 and summary["ewma"] == 0.8
    assert summary["rejected"] == 5 and summary["retry_after"] == 12.5
    assert summary["last_transition"]["reason"] == "r2"


def test_history_counts_this_process_rejections_and_deadline_misses_at_once() -> None:
    before = {r["rule"]: r["total"] for r in history(fleet_processes())["top_rejections"]}
    metrics.request_rejected("dash-test-rule", "rate_limited")
    metrics.deadline_exceeded("/dash-test/")
    data = history(fleet_processes())
    totals = {r["rule"]: r["total"] for r in data["top_rejections"]}
    assert totals["dash-test-rule"] == before.get("dash-test-rule", 0) + 1
    assert any(d["route"] == "/dash-test/" and d["total"] >= 1 for d in data["deadline_exceeded"])


def test_rate_history_keeps_recent_samples_and_forgets_gone_breakers() -> None:
    clock = ManualClock(1000.0)
    h = RateHistory(span=10.0, every=2.0, clock=clock)
    h.record([{"name": "a", "error_rate": 0.1}, {"name": "b", "error_rate": 0.0}])
    clock.advance(1.0)
    h.record([{"name": "a", "error_rate": 0.9}])  # too soon: not sampled
    clock.advance(5.0)
    h.record([{"name": "a", "error_rate": 0.5}])
    assert h.get("a") == [(1000.0, 0.1), (1006.0, 0.5)]
    clock.advance(6.0)  # the first samples are now 12 s old
    h.record([{"name": "a", "error_rate": 1.0}])
    assert h.get("a") == [(1006.0, 0.5), (1012.0, 1.0)]
    assert h.get("b") == []


def test_dashboard_state_carries_each_breakers_recent_history(
    viewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_views.state, "_rates", RateHistory())
    state = _client(viewer).get(API).json()
    (pricing,) = state["breakers"]
    assert pricing["history"] and pricing["history"][-1][1] == pricing["error_rate"]


def test_an_action_during_a_fleet_store_outage_is_applied_here_and_reported(
    operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilience_django import fleet

    class DeadStore:
        def send_command(self, breaker: str, action: str) -> int:
            raise ConnectionError("store down")

        def __getattr__(self, name: str) -> object:
            raise ConnectionError("store down")

    monkeypatch.setattr(fleet, "get_store", lambda: DeadStore())
    monkeypatch.setattr(
        fleet, "fleet_snapshot", lambda: (_ for _ in ()).throw(ConnectionError("store down"))
    )
    c = _client(operator)
    response = c.post(
        API + "pricing/", json.dumps({"updateState": "FORCE_OPEN"}),
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 200
    assert "fleet_error" in response.json()
    assert get_breaker("pricing").state == "forced_open"


# -- history from the fleet --------------------------------------------------------------


@override_settings(
    RESILIENCE={
        "FLEET": {"ENABLED": False},
        "LIMITS": [{"name": "burst-196", "path": "/hello/", "key": "ip", "rate": "1/m"}],
    }
)
def test_state_right_after_rejections_lists_the_rule_with_their_count(viewer: User) -> None:
    statuses = [Client().get("/hello/", REMOTE_ADDR="10.10.0.1").status_code for _ in range(8)]
    assert statuses.count(429) == 7
    state = _client(viewer).get(API).json()  # the page's first request: no earlier sample
    row = next(r for r in state["top_rejections"] if r["rule"] == "burst-196")
    assert (row["reason"], row["count"], row["total"]) == ("rate_limited", 7, 7)
    assert state["window_seconds"] == 60


def test_state_sums_the_last_minute_of_every_process_in_the_fleet(viewer: User) -> None:
    from resilience_django import fleet

    config = {"FLEET": {"PREFIX": "history-test", "TTL": 30}}
    with override_settings(RESILIENCE=config):
        store = fleet.get_store()
        assert store is not None
        now = int(time.time())
        other = {
            "host": "elsewhere", "pid": 1, "time": time.time(), "breakers": [],
            "limiter": {"backend": "redis", "healthy": False, "fallback_active": True},
            "rejections": [
                # 5 in the last minute (and 40 more before it), 45 since it started.
                {"labels": ["fleet-rule", "rate_limited"], "total": 45,
                 "recent": [[now - 90, 40], [now - 30, 2], [now - 1, 3]]},
                {"labels": "not a list", "total": "x", "recent": None},  # skipped, not fatal
            ],
            "deadlines": [{"labels": ["/slow/"], "total": 4, "recent": [[now - 2, 4]]}],
        }  # fmt: skip
        store.publish("elsewhere:1", other, 30)
        for _ in range(2):
            metrics.request_rejected("fleet-rule", "rate_limited")  # this process, unpublished
        state = _client(viewer).get(API).json()
        fleet.stop()
    row = next(r for r in state["top_rejections"] if r["rule"] == "fleet-rule")
    assert (row["count"], row["total"]) == (7, 47)
    assert {"route": "/slow/", "last_minute": 4, "total": 4} in state["deadline_exceeded"]
    (elsewhere,) = [w for w in state["limiters"] if w["host"] == "elsewhere"]
    assert elsewhere["fallback_active"] is True and elsewhere["backend"] == "redis"
    assert state["processes"] >= 2
