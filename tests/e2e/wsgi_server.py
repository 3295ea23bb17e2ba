"""Start and stop a real gunicorn (sync workers) serving the test project, for WSGI e2e tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.server import ROOT, Server, _wait_ready
from tests.services import free_port, missing


@contextmanager
def gunicorn_server(
    config: Mapping[str, Any],
    *,
    app: str = "tests.e2e.wsgi:application",
    settings: str = "tests.e2e.settings",
    workers: int = 1,
) -> Iterator[Server]:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        missing("gunicorn is not installed (pip install -e '.[dev]')")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="resilience-wsgi-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "RESILIENCE_TEST_CONFIG": json.dumps(config),
        "RESILIENCE_TEST_SQLITE": str(tmp / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    log = tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", app,
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                "--worker-class", "sync", "--timeout", "30", "--log-level", "warning",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_ready(server)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
