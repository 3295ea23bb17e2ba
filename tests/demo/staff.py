"""A visitor of the demo: places orders, logs in as the demo superuser, turns chaos knobs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.demo.server import Demo

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SERVICES = ("pricing", "inventory", "risk")
DASHBOARD_API = "/admin/resilience_django/breakerdashboard/api/"


def order(demo: Demo, client: str, trip: str = "LIS-BER", seats: int = 2) -> httpx.Response:
    """One order from ``client`` (an address the demo trusts from 127.0.0.1 via X-Forwarded-For)."""
    return httpx.post(
        demo.url + "/api/orders",
        json={"trip": trip, "seats": seats},
        headers={"X-Forwarded-For": client},
        timeout=5.0,
    )


def csrf_token(response: httpx.Response) -> str:
    match = CSRF.search(response.text)
    assert match, response.text[:500]
    return match.group(1)


def login(demo: Demo) -> httpx.Client:
    """An httpx client with the demo superuser's admin session."""
    http = httpx.Client(base_url=demo.url, timeout=5.0)
    page = http.get("/admin/login/")
    answer = http.post(
        "/admin/login/",
        data={
            "username": "demo",
            "password": demo.password,
            "csrfmiddlewaretoken": csrf_token(page),
            "next": "/admin/",
        },
    )
    assert answer.status_code == 302, answer.text[:500]
    return http


def set_knobs(http: httpx.Client, **services: dict[str, Any]) -> httpx.Response:
    """Submit the /chaos/ form: every service not named is calm."""
    token = csrf_token(http.get("/chaos/"))
    data: dict[str, str] = {"csrfmiddlewaretoken": token}
    for service in SERVICES:
        knobs = services.get(service, {})
        data[f"{service}-latency_ms"] = str(knobs.get("latency_ms", 0))
        data[f"{service}-error_percent"] = str(knobs.get("error_percent", 0))
        if knobs.get("outage"):
            data[f"{service}-outage"] = "on"
    return http.post("/chaos/", data=data)


def breaker_row(http: httpx.Client, name: str) -> dict[str, Any] | None:
    """The breaker's fleet-wide row on the admin's dashboard (None before any process has it)."""
    answer = http.get(f"{DASHBOARD_API}{name}/")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def breaker_state(http: httpx.Client, name: str) -> str | None:
    """The breaker's fleet-wide state as the admin's dashboard shows it."""
    row = breaker_row(http, name)
    return None if row is None else str(row["state"])


def eventually(check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(every)
