"""Another process's report holding NaN or infinity (another version's, a hand-written one, a
bug) must not break the dashboard for everyone: JSON has no such numbers and a browser refuses
a whole document holding one, so they come as ``null`` in the JSON and in the page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from resilience_django.admin_views import state

DASHBOARD = "/admin/resilience_django/breakerdashboard/"

pytestmark = pytest.mark.django_db


def _strict(text: str) -> Any:
    """Parse as a browser does: NaN, Infinity and -Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(autouse=True)
def _one_odd_report(fresh_breakers: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    nan, inf = float("nan"), float("inf")
    breaker = {"name": "pricing", "state": "closed", "calls": 4, "failures": 1,
               "failure_rate": nan, "slow_rate": inf, "time": nan}  # fmt: skip
    limiter = {"backend": "redis", "healthy": True, "fallback_active": False,
               "last_latency_ms": nan, "live_instances": -inf}  # fmt: skip
    report = {"host": "b", "pid": 2, "time": inf, "limiter": limiter, "breakers": [breaker]}
    monkeypatch.setattr(state, "fleet_processes", lambda: [report])
    monkeypatch.setattr(state, "_rates", state.RateHistory())
    with override_settings(RESILIENCE={"FLEET": {"ENABLED": False}}):
        yield


def test_the_json_endpoint_answers_strict_json_with_null_for_them(viewer: User) -> None:
    client = Client()
    client.force_login(viewer)
    data = _strict(client.get(DASHBOARD + "api/").content.decode())
    (pricing,) = data["breakers"]
    assert pricing["calls"] == 4
    assert pricing["processes"][0]["failure_rate"] is None
    assert data["limiters"][0]["last_latency_ms"] is None


def test_the_page_carries_strict_json_for_its_first_render(viewer: User) -> None:
    client = Client()
    client.force_login(viewer)
    page = client.get(DASHBOARD).content.decode()
    initial = re.search(r'<script id="rd-initial-state" type="application/json">(.*?)</script>',
                        page, re.S)  # fmt: skip
    assert initial is not None
    assert _strict(initial.group(1))["breakers"][0]["name"] == "pricing"
