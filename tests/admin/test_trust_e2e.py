"""A real uvicorn server with rows naming dotted paths no setting allows: never called.

Before ``RESILIENCE["ADMIN_CHOICES"]`` a limit rule keyed ``sys.exit`` made the
next matching request raise ``SystemExit`` and the server exited, and one keyed
``django.contrib.auth.logout`` logged every matching user out.  The rows are
written straight into the database (as rows saved before this change would
be); a good rule saved through the admin makes the server reload them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ROOT

from .servers import add_through_admin, admin_login, servers, shared_env

pytestmark = pytest.mark.e2e

CONFIG = {"RELOAD_INTERVAL": "1s"}
PATH = "/admin-test/limited/"
BAD_ROWS = """
from resilience_django.models import LimitRule
LimitRule.objects.bulk_create([
    LimitRule(name="exit", key="sys.exit", rate="100/m", path="{path}"),
    LimitRule(name="logout", key="django.contrib.auth.logout", rate="100/m", path="{path}"),
])
"""


def _write_bad_rows(tmp: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RESILIENCE_TEST_CONFIG": json.dumps(CONFIG),
           **shared_env(tmp)}  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", BAD_ROWS.format(path=PATH)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def test_rows_keyed_sys_exit_and_logout_neither_stop_the_server_nor_log_anyone_out(
    tmp_path: Path,
) -> None:
    with servers(CONFIG, tmp_path, count=1) as (server,):
        _write_bad_rows(tmp_path)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            admin_login(client)
            # Saving through the admin bumps the version: the server reloads every row.
            add_through_admin(
                client,
                "limitrule",
                {"name": "good", "enabled": "on", "mode": "enforce", "key": "ip",
                 "rate": "1000/m", "path": PATH, "algorithm": "sliding_window",
                 "scope": "local"},
            )  # fmt: skip
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                loaded = client.get("/admin-test/live-rules/").json()["limit_rules"]
                if "good" in loaded:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"the server never loaded the good rule: {loaded}")
            assert "exit" not in loaded and "logout" not in loaded

            statuses = [client.get(PATH).status_code for _ in range(5)]
            assert statuses == [200] * 5, (statuses, server.output()[-2000:])
            assert server.process.poll() is None, server.output()[-2000:]
            # Still logged in: the logout "key" was never called with our request.
            assert client.get("/admin/").status_code == 200
            changelist = client.get("/admin/resilience_django/limitrule/").text
            assert changelist.count("not in force") == 2
