"""The local variants called in one process, through ASGI without HTTP: a steadier A/B.

``python -m benchmarks._e2e_apps.inproc [--quick]`` prints JSON: CPU µs per
request for each variant.  Every variant is a Django ``ASGIHandler`` built in
this one process (ours with ``MIDDLEWARE`` overridden while it loads), called
with a fake scope, one request at a time, in short interleaved blocks; CPU time
(``time.process_time``) so that other users of the machine count for little.
There is no uvicorn and no socket, so Django's own share of the cost is
smaller than under a real server and our middleware's share is larger: this
ratio is stricter than the end-to-end one.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ["BENCH_E2E_VARIANT"] = "inproc"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks._e2e_apps.settings")

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _apps() -> dict[str, tuple[App, str]]:
    import django
    from django.core.handlers.asgi import ASGIHandler
    from django.test import override_settings

    from resilience_django.asgi import ResilienceASGIMiddleware

    from .settings import OURS

    django.setup()
    plain = ASGIHandler()
    with override_settings(MIDDLEWARE=[OURS]):
        ours = ASGIHandler()
        ours_asgi = ResilienceASGIMiddleware(ASGIHandler())
    return {
        "plain": (plain, "/hello/"),
        "ours_local": (ours, "/hello/"),
        "ours_local_asgi": (ours_asgi, "/hello/"),  # type: ignore[dict-item]
        "ratelimit_locmem": (plain, "/rl/hello/"),
    }


async def _one(app: App, path: str) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    first = True
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: Django cancels this listener
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"{path} answered {status}")


async def _measure(rounds: int, block: int) -> dict[str, Any]:
    apps = _apps()
    for app, path in apps.values():  # warm up
        for _ in range(100):
            await _one(app, path)
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, (app, path) in apps.items():
            gc.collect()
            started = time.process_time()
            for _ in range(block):
                await _one(app, path)
            samples[name].append((time.process_time() - started) / block * 1e6)
    plain = samples["plain"]
    out: dict[str, Any] = {}
    for name, values in samples.items():
        out[name] = {
            "cpu_us_median": round(statistics.median(values), 1),
            "cpu_us_best": round(min(values), 1),
            "ratio_to_plain": round(
                statistics.median(p / v for p, v in zip(plain, values, strict=True)), 3
            ),
            "added_us": round(
                statistics.median(v - p for p, v in zip(plain, values, strict=True)), 1
            ),
        }
    return {"variants": out, "rounds": rounds, "requests_per_block": block}


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, block = (10, 200) if quick else (20, 300)
    print(json.dumps(asyncio.run(_measure(rounds, block))))


if __name__ == "__main__":
    main()
