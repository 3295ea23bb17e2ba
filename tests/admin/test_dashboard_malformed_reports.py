"""Another process's malformed fleet report (another version's, a hand-written one) hides
only its own rows: the dashboard shows the sound ones and never answers 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from resilience_django.admin_views import state

API = "/admin/resilience_django/breakerdashboard/api/"

pytestmark = pytest.mark.django_db

_LIMITER = {"backend": "local", "healthy": True, "fallback_active": False}


def _report(host: str, pid: Any, *breakers: dict[str, Any]) -> dict[str, Any]:
    return {"host": host, "pid": pid, "time": 1.0, "limiter": dict(_LIMITER),
            "breakers": list(breakers)}  # fmt: skip


def _breaker(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "state": "closed", "calls": 4, "failures": 1, **fields}


@pytest.fixture(autouse=True)
def _no_fleet_store(fresh_breakers: None) -> Iterator[None]:
    with override_settings(RESILIENCE={"FLEET": {"ENABLED": False}}):
        yield


def _dashboard(viewer: User, reports: list[dict[str, Any]], monkeypatch: Any) -> Any:
    monkeypatch.setattr(state, "fleet_processes", lambda: reports)
    monkeypatch.setattr(state, "_rates", state.RateHistory())
    c = Client()
    c.force_login(viewer)
    response = c.get(API)
    assert response.status_code == 200
    return response.json()


def test_pids_of_different_types_on_one_host_are_all_listed(
    viewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = [_report("a", 12), _report("a", "7"), _report("a", None), _report("a", 3)]
    data = _dashboard(viewer, reports, monkeypatch)
    assert [w["pid"] for w in data["limiters"]] == ["7", None, 3, 12]


@pytest.mark.parametrize(
    "bad",
    [
        {"state": ["open"]},
        {"state": {"open": 1}},
        {"calls": "many"},
        {"calls": [1]},
        {"failures": float("nan")},
        {"ewma": "high"},
        {"retry_after": {"s": 1}},
        {"rejected": float("inf")},
        {"last_transition": "yesterday"},
        {"last_transition": {"to": "open", "at": "noon"}},
        {"last_transition": {"to": "open", "at": [1]}},
    ],
    ids=repr,
)
def test_a_malformed_breaker_row_hides_only_itself(
    viewer: User, monkeypatch: pytest.MonkeyPatch, bad: dict[str, Any]
) -> None:
    sound = _breaker("pricing", last_transition={"from": "closed", "to": "open", "at": 5.0})
    reports = [
        _report("a", 1, sound),
        _report("b", 2, _breaker("pricing", **bad), _breaker("search")),
    ]
    data = _dashboard(viewer, reports, monkeypatch)
    pricing, search = data["breakers"]
    assert pricing["name"] == "pricing" and search["name"] == "search"
    assert [(p["host"], p["pid"]) for p in pricing["processes"]] == [("a", 1)]
    assert pricing["calls"] == 4 and pricing["last_transition"]["at"] == 5.0
    assert data["processes"] == 2
