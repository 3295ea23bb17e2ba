"""A process with one shared breaker whose fleet rounds use the database store (the shared
open and operator tests): ``python -m tests.fleetstore.shared_worker CONFIG``.

CONFIG is JSON: ``{"database": {...}, "dir": "...", "name": "w0"}``, or with ``"migrate": true``
only migrates that database.  In ``dir``: ``trip-<name>`` makes it fail calls until the breaker
opens, ``close-<name>`` makes it send ``force_close`` through the store (as an operator would),
``stop`` ends it (so does 90 s).  After every round it writes ``state-<name>.json``:
``{"state": ..., "reason": ..., "rounds": n}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django
from django.conf import settings


def main() -> None:
    config = json.loads(sys.argv[1])
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "resilience_django"],
        DATABASES={"default": config["database"]},
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    if config.get("migrate"):
        call_command("migrate", verbosity=0)
        return
    from resilience_django.breakers import events
    from resilience_django.breakers.policy import BreakerPolicy
    from resilience_django.breakers.state import Breaker
    from resilience_django.fleet import FleetPublisher
    from resilience_django.fleetstore.database import DatabaseStore

    store = DatabaseStore()
    policy = BreakerPolicy(failure_threshold=1, open_for=60, shared=True, shared_poll=0.05)
    b = Breaker("shared", policy)
    pub = FleetPublisher(store, lambda: [b], interval=0.5, command_poll=0.05)
    pub.attach(b)
    directory, name = Path(config["dir"]), config["name"]
    done: set[str] = set()
    rounds = 0
    deadline = time.monotonic() + 90
    while not (directory / "stop").exists() and time.monotonic() < deadline:
        if "trip" not in done and (directory / f"trip-{name}").exists():
            done.add("trip")
            b.record_failure(b.acquire())
            events.flush(30)  # the fleet round hears of the trip through its listener
        if "close" not in done and (directory / f"close-{name}").exists():
            done.add("close")
            store.send_command("shared", "force_close")
        pub.tick()
        rounds += 1
        t = b.last_transition
        state = {"state": b.state, "reason": t and t.reason, "rounds": rounds}
        path = directory / f"state-{name}.json"
        path.with_suffix(".tmp").write_text(json.dumps(state))
        os.replace(path.with_suffix(".tmp"), path)  # the test never reads a half-written file
        time.sleep(0.02)
    connections.close_all()


if __name__ == "__main__":
    main()
