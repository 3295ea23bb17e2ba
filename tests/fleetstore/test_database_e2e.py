"""Two real servers that share nothing but the database (SQLite file, or PostgreSQL).

Each keeps Django's default per-process LocMemCache and has no Redis, so the
fleet store falls to the database: admin edits, the fleet view and operator
commands must all cross between the servers through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admin.servers import (
    add_through_admin,
    admin_login,
    database_only_env,
    servers,
)
from tests.e2e.server import ROOT, Server
from tests.utils.waiting import wait_for

from .databases import postgres_database, set_connections_allowed, sqlite_database

pytestmark = pytest.mark.e2e

CONFIG = {"RELOAD_INTERVAL": "1s", "FLEET": {"TTL": 10}}
API = "/admin/resilience_django/breakerdashboard/api/"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield sqlite_database(tmp_path)
    else:
        with postgres_database() as db:
            yield db


def policy(server: Server) -> str | None:
    return httpx.get(server.url + "/admin-test/limited/", timeout=10).headers.get(
        "RateLimit-Policy"
    )


def orm(database: dict[str, Any], code: str) -> None:
    """Run ``code`` in a separate Django process on the servers' database (the ORM, no admin)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **database_only_env(database)}
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def force_open_through(server: Server, name: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        admin_login(client)
        response = client.post(
            API + name + "/",
            json={"updateState": "FORCE_OPEN"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 200, response.text


def test_admin_edits_fleet_view_and_commands_cross_servers_through_the_database_alone(
    database: dict[str, Any], tmp_path: Path
) -> None:
    with servers(CONFIG, tmp_path, 2, database=database) as (a, b):
        assert policy(b) is None
        # An admin edit in A is in force in B.
        with httpx.Client(base_url=a.url, timeout=10) as client:
            admin_login(client)
            add_through_admin(
                client, "limitrule",
                {"name": "db-only", "enabled": "on", "mode": "enforce", "key": "ip",
                 "algorithm": "sliding_window", "scope": "local",
                 "path": "/admin-test/limited/", "rate": "100/m"},
            )  # fmt: skip
        took = wait_for(lambda: policy(b) == '"db-only";q=100;w=60', 15, "admin edit in B")
        print(f"admin edit in A in force in B after {took:.2f}s")

        # An edit through the ORM that sends no signal (QuerySet.update) but sets
        # updated_at, from a process that is neither server.
        orm(
            database,
            "from django.utils import timezone\n"
            "from resilience_django.models import LimitRule\n"
            "rows = LimitRule.objects.filter(name='db-only')\n"
            "rows.update(rate='7/m', updated_at=timezone.now())",
        )
        wait_for(lambda: policy(b) == '"db-only";q=7;w=60', 15, "QuerySet.update in B")

        # The fleet view in A lists both processes, and a force-open through A reaches B.
        name = "fleet-db"
        for server in (a, b):
            assert httpx.get(f"{server.url}/admin-test/fail/{name}/").status_code == 502
        with httpx.Client(base_url=a.url, timeout=10) as client:
            admin_login(client)

            def both_listed() -> bool:
                response = client.get(API + name + "/")
                return response.status_code == 200 and len(response.json()["processes"]) == 2

            wait_for(both_listed, 15, "both processes in A's dashboard")
            assert client.get(API).json()["processes"] == 2
        force_open_through(a, name)
        took = wait_for(
            lambda: httpx.get(f"{b.url}/admin-test/fail/{name}/").status_code == 503,
            15, "force-open in B",
        )  # fmt: skip
        print(f"force-open through A reached B after {took:.2f}s")


@pytest.mark.postgres
def test_a_database_outage_fails_no_request_is_logged_once_and_heals(tmp_path: Path) -> None:
    with postgres_database() as database, servers(CONFIG, tmp_path, 2, database=database) as (a, b):
        for server in (a, b):  # both report and poll from now on
            assert httpx.get(f"{server.url}/admin-test/fail/before/").status_code == 502
        set_connections_allowed(database, False)
        try:
            started = time.monotonic()
            codes = []
            # Several reload intervals and fleet rounds, each one failing (and
            # on a loaded machine, on until a fleet round has surely failed).
            while time.monotonic() - started < 4 or (
                "breaker fleet store unavailable" not in b.output()
                and time.monotonic() - started < 20
            ):
                codes.append(httpx.get(b.url + "/hello/", timeout=10).status_code)
                time.sleep(0.05)
            assert set(codes) == {200}
        finally:
            set_connections_allowed(database, True)
        log = b.output()
        assert log.count("breaker fleet store unavailable") == 1, log
        assert log.count("cannot read the admin rules version") <= 1, log
        force_open_through(a, "before")  # the database is back: commands flow again
        wait_for(
            lambda: httpx.get(f"{b.url}/admin-test/fail/before/").status_code == 503,
            15, "force-open in B after the outage",
        )  # fmt: skip
