"""With ``BACKEND: "redis"``, a rule that names no scope is shared by every worker.

Two uvicorn worker processes and one real Redis: a 20/m settings rule
without ``scope`` and ``@limit("20/m")`` views (sync and async) each admit
exactly 20 of 40 requests spread over both workers.  Counted per process,
as before, they admitted up to 20 per worker (38 of 40 under
``gunicorn -w 2``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.server import Server, uvicorn_server
from tests.utils.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PATHS = ["/plain/", "/decorated-sync/", "/decorated-async/"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    redis = RedisServer().start()
    config = {
        "BACKEND": "redis",
        "REDIS": {"URL": redis.url},
        # A loaded test machine must not push decisions to the per-process fallback.
        "FALLBACK_LATENCY": "500ms",
        "LIMITS": [{"name": "plain-20m", "path": "/plain/", "key": "ip", "rate": "20/m"}],
    }
    try:
        with uvicorn_server(
            config,
            workers=2,
            extra_env={"DJANGO_SETTINGS_MODULE": "tests.e2e.default_scope_settings"},
        ) as srv:
            yield srv
    finally:
        redis.stop()


def _get(url: str) -> tuple[int, str]:
    # A connection per request, so the kernel hands requests to both workers.
    response = httpx.get(url, timeout=10.0, headers={"Connection": "close"})
    return response.status_code, response.headers.get("X-Pid", "")


def _burst(server: Server, path: str, total: int = 40) -> tuple[Counter[int], set[str]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(_get, [server.url + path] * total))
    return Counter(code for code, _ in answers), {pid for _, pid in answers}


@pytest.mark.parametrize("path", PATHS)
def test_a_rule_without_scope_is_shared_by_two_workers_under_redis(
    server: Server, path: str
) -> None:
    codes, pids = _burst(server, path)
    assert len(pids) == 2, f"both workers must serve the burst to show anything: {pids}"
    assert codes == {200: 20, 429: 20}, (codes, server.output()[-2000:])
