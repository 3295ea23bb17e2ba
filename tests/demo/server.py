"""Run the demo for real: ``manage.py migrate`` + ``demo_setup``, then uvicorn on a free port.

Each server gets its own SQLite file and file cache, so tests never share
knobs, breakers or limits; a prepared database is copied instead of migrated
again, which keeps a server's start to about a second.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = re.compile(r"demo superuser: demo / (\S+)")


def demo_env(tmp: Path, port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="demo_project.settings",
        DEMO_DB=str(tmp / "db.sqlite3"),
        DEMO_CACHE_DIR=str(tmp / "cache"),
        DEMO_DOWNSTREAM_URL=f"http://127.0.0.1:{port}/downstream",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


def manage(env: Mapping[str, str], *args: str, timeout: float = 90.0) -> str:
    """Run ``manage.py`` with ``args``; its stdout (raises with the output on failure)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")  # fmt: skip
    return done.stdout


def prepare_database(directory: Path) -> tuple[Path, str, str]:
    """A migrated database with the samples and the superuser: (file, password, setup output)."""
    env = demo_env(directory, 0)
    manage(env, "migrate", "--noinput", "-v", "0")
    output = manage(env, "demo_setup")
    match = PASSWORD.search(output)
    assert match, output
    return directory / "db.sqlite3", match.group(1), output


@dataclass
class Demo:
    url: str
    password: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def demo_server(
    database: Path,
    password: str,
    *,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Demo]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="resilience-demo-"))
    env = demo_env(tmp, port, extra_env)
    shutil.copy(database, tmp / "db.sqlite3")
    log = tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "demo_project.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--log-level", "warning", "--no-access-log",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    demo = Demo(f"http://127.0.0.1:{port}", password, env, process, log)
    try:
        _wait_ready(demo)
        yield demo
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(demo: Demo, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early:\n{demo.output()}")
        try:
            if httpx.get(demo.url + "/", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the demo did not start in {timeout}s:\n{demo.output()}")
