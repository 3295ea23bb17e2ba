"""A worker for the status tests: ``python -m tests.management.status_worker CONFIG``.

CONFIG is JSON: ``{"resilience": {...}, "dir": "...", "use": [...], "trip": "name"}``.
The worker builds its runtime as a served request would (which starts its
limiter and its fleet reporting), uses the breakers named in ``use``, prints
``ready`` once a report naming those breakers is in the fleet store, and trips ``trip`` when the
file ``<dir>/trip`` appears.  It exits when ``<dir>/stop`` appears or after
60 s, so a failed test never leaves it behind.
"""

from __future__ import annotations

import json
import os
import sys
import time

import django
from django.conf import settings


def main() -> None:
    config = json.loads(sys.argv[1])
    settings.configure(
        INSTALLED_APPS=[],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        RESILIENCE=config["resilience"],
    )
    django.setup()
    from resilience_django.breakers.registry import get_breaker
    from resilience_django.fleet import get_store
    from resilience_django.runtime import get_runtime

    get_runtime()
    breakers = [get_breaker(name) for name in config.get("use", [])]
    store = get_store()
    assert store is not None
    me = os.getpid()
    used = set(config.get("use", []))
    deadline = time.monotonic() + 60

    def reported() -> bool:
        # A report that names every used breaker: the first one, sent as the runtime
        # was built, may predate them.
        return any(
            p.get("pid") == me and used <= {b.get("name") for b in p.get("breakers") or []}
            for p in store.processes(30)
        )

    while not reported():
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    print("ready", flush=True)
    directory, trip = config["dir"], config.get("trip")
    while time.monotonic() < deadline and not os.path.exists(os.path.join(directory, "stop")):
        if trip and os.path.exists(os.path.join(directory, "trip")):
            breaker = get_breaker(trip)
            while breaker.state == "closed":
                breaker.record_failure(breaker.acquire())
            trip = None
        time.sleep(0.02)
    del breakers


if __name__ == "__main__":
    main()
