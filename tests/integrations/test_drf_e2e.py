"""DRF with TokenAuthentication on two real uvicorn workers sharing one real Redis.

The throttle decides after DRF authenticated the token, on the Redis limiter
(``BACKEND: "redis"``), so alice's 3/min holds across both workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("rest_framework")

from tests.e2e.server import ROOT, Server, uvicorn_server
from tests.utils.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

CREATE_USERS = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
tokens = {}
for name in ("alice", "bob"):
    user = get_user_model().objects.create_user(name, password=name + "-pw")
    tokens[name] = Token.objects.create(user=user).key
print(json.dumps(tokens))
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, dict[str, str]]]:
    redis = RedisServer().start()
    database = Path(tempfile.mkdtemp(prefix="resilience-drf-")) / "db.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.integrations.drf_settings",
        "RESILIENCE_TEST_SQLITE": str(database),
    }
    config = {
        "BACKEND": "redis",
        "REDIS": {"URL": redis.url},
        "FALLBACK_LATENCY": "500ms",  # a loaded machine must not fall back to per process
        "LIMITS": [
            {"name": "drf-user-rule", "path": "/drf/rules/", "key": "user", "rate": "3/m",
             "after_auth": True},
        ],
    }  # fmt: skip
    try:
        with uvicorn_server(config, workers=2, extra_env=env) as server:
            made = subprocess.run(
                [sys.executable, "-m", "django", "shell", "-c", CREATE_USERS],
                cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            yield server, json.loads(made.stdout.strip().splitlines()[-1])
    finally:
        redis.stop()


def _get(server: Server, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Connection": "close"}  # a connection per request: both workers answer
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    return httpx.get(server.url + path, headers=headers, timeout=10.0)


@pytest.mark.parametrize(
    ("path", "rule"), [("/drf/user/", "drf.user"), ("/drf/rules/", "drf-user-rule")]
)
def test_token_authenticated_alice_gets_three_then_429_across_two_workers(
    served: tuple[Server, dict[str, str]], path: str, rule: str
) -> None:
    server, tokens = served
    responses = [_get(server, path, tokens["alice"]) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429], server.output()[-2000:]
    assert responses[0].json()["user"] == "alice"
    assert responses[0].headers["RateLimit-Policy"] == f'"{rule}";q=3;w=60'
    refused = responses[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit"].startswith(f'"{rule}";r=0;t=')
    # Bob is not affected by alice's use.
    assert _get(server, path, tokens["bob"]).status_code == 200


def test_anonymous_clients_are_keyed_by_ip_across_two_workers(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, _ = served
    codes = [_get(server, "/drf/anon/").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
