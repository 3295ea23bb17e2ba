"""Live reload across real processes: a rule saved in one server is in force in another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server

from .servers import add_through_admin, admin_login, servers

pytestmark = pytest.mark.e2e

RULE = {
    "enabled": "on",
    "mode": "enforce",
    "key": "ip",
    "algorithm": "sliding_window",
    "scope": "local",
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    tmp: Path = tmp_path_factory.mktemp("live-e2e")
    with servers({"RELOAD_INTERVAL": "1s"}, tmp, count=2) as started:
        yield started


def _add_rule(server: Server, **fields: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        admin_login(client)
        add_through_admin(client, "limitrule", {**RULE, **fields})


def test_rule_added_in_one_server_is_loaded_by_the_other_within_two_seconds(
    pair: list[Server],
) -> None:
    a, b = pair
    names = httpx.get(b.url + "/admin-test/live-rules/").json()["limit_rules"]
    assert "loaded" not in names
    _add_rule(a, name="loaded", path="/nowhere/", rate="5/s")
    saved = time.monotonic()
    while time.monotonic() - saved < 2.0:
        if "loaded" in httpx.get(b.url + "/admin-test/live-rules/").json()["limit_rules"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("server B did not load the rule saved in server A within 2 s")


def test_rule_added_in_one_server_makes_the_other_answer_429_within_two_seconds(
    pair: list[Server],
) -> None:
    a, b = pair
    assert httpx.get(b.url + "/admin-test/limited/").status_code == 200
    _add_rule(a, name="limited", path="/admin-test/limited/", rate="1/m")
    saved = time.monotonic()
    statuses = []
    while time.monotonic() - saved < 2.0:
        statuses.append(httpx.get(b.url + "/admin-test/limited/").status_code)
        if statuses[-1] == 429:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"server B never answered 429 within 2 s: {statuses}")


def test_shedding_rule_added_in_one_server_sheds_in_the_other_within_two_seconds(
    pair: list[Server],
) -> None:
    import asyncio

    a, b = pair
    with httpx.Client(base_url=a.url, timeout=10) as client:
        admin_login(client)
        add_through_admin(
            client,
            "sheddingrule",
            {"name": "one-at-a-time", "enabled": "on", "position": "0",
             "path": "/slow/async/", "max_concurrent": "1", "queue": "0",
             "max_wait": "100ms", "critical_share": "0"},
        )  # fmt: skip
    saved = time.monotonic()
    while time.monotonic() - saved < 2.0:
        rules = httpx.get(b.url + "/admin-test/live-rules/").json()["shedding_rules"]
        if "one-at-a-time" in rules:
            break
        time.sleep(0.05)
    else:
        pytest.fail("server B did not load the shedding rule saved in server A within 2 s")

    async def seconds_while_first_runs() -> tuple[int, list[int]]:
        # A loaded machine may take a while to put the first request in flight, so the
        # second request is repeated until the first one ends: while it is in flight,
        # the one-at-a-time rule must turn every other request away.
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as c:
            first = asyncio.ensure_future(c.get("/slow/async/?s=2"))
            seconds: list[int] = []
            while not first.done() and 503 not in seconds:
                await asyncio.sleep(0.1)
                seconds.append((await c.get("/slow/async/?s=0")).status_code)
            return (await first).status_code, seconds

    first, seconds = asyncio.run(seconds_while_first_runs())
    assert first == 200
    assert 503 in seconds, seconds


def test_dashboard_shows_both_processes_and_a_force_open_reaches_the_other(
    pair: list[Server],
) -> None:
    a, b = pair
    name = "fleet-e2e"
    for server in pair:
        assert httpx.get(f"{server.url}/admin-test/fail/{name}/").status_code == 502
    with httpx.Client(base_url=a.url, timeout=10) as client:
        admin_login(client)
        api = "/admin/resilience_django/breakerdashboard/api/"
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # each process publishes about once a second
            response = client.get(api + name + "/")
            if response.status_code == 200 and len(response.json()["processes"]) == 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the dashboard never showed both processes: {response.text}")
        response = client.post(
            api + name + "/",
            json={"updateState": "FORCE_OPEN"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 200, response.text
    sent = time.monotonic()
    while time.monotonic() - sent < 2.0:
        if httpx.get(f"{b.url}/admin-test/fail/{name}/").status_code == 503:
            break
        time.sleep(0.05)
    else:
        pytest.fail("server B's breaker did not open within 2 s of the force-open")
