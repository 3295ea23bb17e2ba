"""Real servers sharing one SQLite file and one file-based cache, with an admin user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import ROOT, Server, uvicorn_server

USERNAME = "admin"
PASSWORD = "admin-pw"
_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def shared_env(tmp: Path) -> dict[str, str]:
    """Environment that makes every server use the same database and cache."""
    (tmp / "cache").mkdir(exist_ok=True)
    return {
        "DJANGO_SETTINGS_MODULE": "tests.admin.server_settings",
        "RESILIENCE_TEST_SQLITE": str(tmp / "shared.sqlite3"),
        "RESILIENCE_TEST_CACHE_DIR": str(tmp / "cache"),
    }


def database_only_env(database: Mapping[str, Any]) -> dict[str, str]:
    """Environment that makes every server use ``database`` and nothing else shared
    (each keeps Django's default per-process LocMemCache)."""
    import json

    return {
        "DJANGO_SETTINGS_MODULE": "tests.admin.server_settings",
        "RESILIENCE_TEST_DATABASE": json.dumps(dict(database)),
    }


def prepare_database(env: Mapping[str, str], config: Mapping[str, Any]) -> None:
    """Migrate the shared database and create the superuser the tests log in as."""
    import json

    full = {**os.environ, "PYTHONPATH": str(ROOT), "RESILIENCE_TEST_CONFIG": json.dumps(config),
            **env}  # fmt: skip
    run = [sys.executable, "-m", "django"]
    subprocess.run([*run, "migrate", "-v", "0"], cwd=ROOT, env=full, check=True)
    subprocess.run(
        [*run, "createsuperuser", "--noinput", "--username", USERNAME, "--email", "a@example.com"],
        cwd=ROOT,
        env={**full, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )


@contextmanager
def servers(
    config: Mapping[str, Any], tmp: Path, count: int, *, database: Mapping[str, Any] | None = None
) -> Iterator[list[Server]]:
    """``count`` servers sharing a SQLite file and a file-based cache, or only ``database``."""
    env = shared_env(tmp) if database is None else database_only_env(database)
    prepare_database(env, config)
    with ExitStack() as stack:
        yield [stack.enter_context(uvicorn_server(config, extra_env=env)) for _ in range(count)]


def csrf_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


def admin_login(client: httpx.Client) -> None:
    page = client.get("/admin/login/")
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": USERNAME,
            "password": PASSWORD,
            "csrfmiddlewaretoken": csrf_token(page.text),
            "next": "/admin/",
        },
    )
    assert response.status_code == 302, response.text[:500]


def add_through_admin(client: httpx.Client, model: str, data: Mapping[str, Any]) -> None:
    """Fill in and submit an admin add form, as an operator would."""
    url = f"/admin/resilience_django/{model}/add/"
    page = client.get(url)
    response = client.post(url, data={**data, "csrfmiddlewaretoken": csrf_token(page.text)})
    assert response.status_code == 302, response.text[:2000]
