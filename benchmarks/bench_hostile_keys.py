"""Memory under a flood of distinct hostile keys: 200,000 clients, each key at its maximum.

Run: ``python benchmarks/bench_hostile_keys.py`` (``--quick``: 50,000 clients).

Every request goes through ``ResilienceMiddleware`` (sync) with three local
rules whose keys a client controls or rotates: ``ip`` behind a hop-count
proxy (a fresh 10 KB ``X-Forwarded-For`` entry, not an address, each time, and
a fresh valid address each time), and ``header:X-Api-Key`` (a fresh 10 KB value
each time).  ``LOCAL_MAX_KEYS`` is set to 20,000 so the bound is reached many
times over.  Reported: Python heap growth (``tracemalloc``) after the flood,
per remembered key, against the documented bound (docs/security.md: the local
store keeps at most ``LOCAL_MAX_KEYS`` keys of at most ``MAX_KEY_LENGTH``
characters each).  Also the same flood through django-ratelimit on LocMemCache
(its default ``MAX_ENTRIES`` of 300 bounds it) for scale.

A figure, not a test: the test suite checks the bounds themselves
(tests/limiting/test_keys.py, tests/limiting/test_local.py).
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_KEYS = 20_000
HUGE = 10_000


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=[],
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            RESILIENCE={
                "TRUSTED_PROXIES": 1,
                "LOCAL_MAX_KEYS": MAX_KEYS,
                "RELOAD_INTERVAL": None,
                "FLEET": {"ENABLED": False},
                "LIMITS": [
                    {"name": "by-ip", "path": "/", "key": "ip", "rate": "5/m"},
                    {"name": "by-api-key", "path": "/", "key": "header:X-Api-Key",
                     "rate": "5/m"},
                ],
            },
        )  # fmt: skip
        django.setup()


urlpatterns: list[Any] = []


def _flood(clients: int) -> dict[str, Any]:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from resilience_django.middleware import ResilienceMiddleware

    middleware = ResilienceMiddleware(lambda request: HttpResponse("ok"))
    factory = RequestFactory()
    filler = "x" * (HUGE - 16)
    warm = factory.get("/", HTTP_X_API_KEY="warm", REMOTE_ADDR="10.0.0.1")
    middleware(warm)  # the runtime, its rules and its stores exist before we count
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    statuses: dict[int, int] = {}
    for i in range(clients):
        # Alternate junk entries (never a key now) and valid rotating addresses.
        forwarded = f"{i:016d}{filler}" if i % 2 else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        request = factory.get(
            "/", HTTP_X_FORWARDED_FOR=forwarded, HTTP_X_API_KEY=f"{i:016d}{filler}",
            REMOTE_ADDR="192.0.2.7",
        )  # fmt: skip
        status = middleware(request).status_code
        statuses[status] = statuses.get(status, 0) + 1
        del request
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"clients": clients, "heap_growth_bytes": after - before, "peak_bytes": peak,
            "statuses": statuses}  # fmt: skip


def _django_ratelimit(clients: int) -> dict[str, Any] | None:
    try:
        from django_ratelimit.core import is_ratelimited
    except ImportError:
        return None
    from django.test import RequestFactory

    factory = RequestFactory()
    filler = "x" * (HUGE - 16)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(clients):
        request = factory.get("/", HTTP_X_API_KEY=f"{i:016d}{filler}")
        is_ratelimited(request, group="g", key="header:x-api-key", rate="5/m", increment=True)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"clients": clients, "heap_growth_bytes": after - before}


def run(quick: bool = False) -> dict[str, Any]:
    _setup_django()
    from resilience_django.limiting import keys

    clients = 50_000 if quick else 200_000
    ours = _flood(clients)
    max_key = getattr(keys, "MAX_KEY_LENGTH", None)
    remembered = MAX_KEYS
    return {
        "ours": ours,
        "ours_bytes_per_remembered_key": ours["heap_growth_bytes"] / remembered,
        "local_max_keys": MAX_KEYS,
        "max_key_length": max_key,
        "django_ratelimit_locmem": _django_ratelimit(clients),
    }


def main() -> None:
    result = run(quick="--quick" in sys.argv)
    ours = result["ours"]
    print(f"clients: {ours['clients']:,}, each with a fresh {HUGE:,}-character key")
    print(f"statuses: {ours['statuses']}")
    print(
        f"LOCAL_MAX_KEYS={result['local_max_keys']:,}, key length bound={result['max_key_length']}"
    )
    print(f"ours: heap growth {ours['heap_growth_bytes'] / 2**20:.1f} MiB "
          f"({result['ours_bytes_per_remembered_key']:.0f} B per remembered key), "
          f"peak {ours['peak_bytes'] / 2**20:.1f} MiB")  # fmt: skip
    peer = result["django_ratelimit_locmem"]
    if peer is not None:
        print(f"django-ratelimit (LocMemCache, MAX_ENTRIES 300): heap growth "
              f"{peer['heap_growth_bytes'] / 2**20:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
