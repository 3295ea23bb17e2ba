"""uvicorn on a Unix socket, as behind nginx: the server reports no peer, so a hop count is
the only way to an ``ip`` key; it must read ``X-Forwarded-For`` then, through the middleware
alone and with the ASGI fast path in front (before, the rule limited nobody)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "TRUSTED_PROXIES": 1,
    "LIMITS": [{"name": "per-ip", "path": "/hello/", "key": "ip", "rate": "1/m"}],
}
APPS = ["tests.e2e.asgi:application", "tests.e2e.asgi_fastpath:application"]


@pytest.fixture(params=APPS, ids=["middleware", "asgi-fastpath"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    tmp = Path(tempfile.mkdtemp(prefix="resilience-uds-"))
    sock = tmp / "uvicorn.sock"
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.e2e.settings",
        "RESILIENCE_TEST_CONFIG": json.dumps(CONFIG),
        "RESILIENCE_TEST_SQLITE": str(tmp / "db.sqlite3"), "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    migrate = [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True)
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", request.param, "--uds", str(sock),
         "--no-proxy-headers", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=10)
    try:
        # Wait for the socket file, not failed connects (httpx leaks their sockets).
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert process.poll() is None, (tmp / "server.log").read_text()
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        assert http.get("http://proxy/ready/").status_code == 200
        yield http
    finally:
        http.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


def test_a_hop_count_keys_on_the_forwarded_address_without_a_peer(client: httpx.Client) -> None:
    def status(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        return client.get("http://proxy/hello/", headers=headers).status_code

    assert [status("203.0.113.7"), status("203.0.113.7"), status("198.51.100.1")] == [200, 429, 200]
