"""Start and stop a real uvicorn serving the test project, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def uvicorn_server(
    config: Mapping[str, Any],
    *,
    app: str = "tests.e2e.asgi:application",
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    tmp = Path(tempfile.mkdtemp(prefix="resilience-e2e-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e.settings",
        "RESILIENCE_TEST_CONFIG": json.dumps(config),
        "RESILIENCE_TEST_SQLITE": str(tmp / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    log = tmp / "server.log"
    for attempt in range(3):
        # A free port is free only until someone else takes it: chosen after the
        # migration, and chosen again if another process bound it before uvicorn did.
        server = _spawn(app, port or free_port(), workers, env, log)
        try:
            _wait_ready(server)
            break
        except RuntimeError:
            _terminate(server.process)
            if port or attempt == 2 or "address already in use" not in server.output():
                raise
    try:
        yield server
    finally:
        _terminate(server.process)


def _spawn(app: str, port: int, workers: int, env: Mapping[str, str], log: Path) -> Server:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", app,
                "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--log-level", "warning", "--no-access-log",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Server(url=f"http://127.0.0.1:{port}", process=process, log=log)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early:\n{server.output()}")
        try:
            httpx.get(server.url + "/ready/", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not start in {timeout}s:\n{server.output()}")
