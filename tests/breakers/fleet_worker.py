"""A worker process for the fleet tests: ``python -m tests.breakers.fleet_worker CONFIG``.

CONFIG is JSON: ``{"resilience": {...}, "caches": {...}, "dir": "...", "names": [...],
"trip": "name", "send": [...]}``.  The worker creates the named breakers (which starts its
fleet thread), then, when the file ``<dir>/trip`` appears and it was given ``trip``,
fails calls on that breaker until it opens.  It exits when ``<dir>/stop``
appears or after 60 s, so a failed test never leaves it behind.

With ``send`` (a list of ``[breaker, action]``), it is an operator instead: it
touches ``<dir>/ready-<pid>``, waits for ``<dir>/go``, sends the commands as
fast as it can, writes ``[[version, breaker, action], ...]`` to
``<dir>/sent-<pid>.json`` and exits.
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
        CACHES=config.get("caches")
        or {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        RESILIENCE=config["resilience"],
    )
    django.setup()
    from resilience_django.breakers.registry import get_breaker
    from resilience_django.wiring import connect

    # The app is not in INSTALLED_APPS here: wire the breakers to the settings and
    # the fleet as its AppConfig.ready() would.
    connect()

    if config.get("send"):
        send(config["dir"], config["send"])
        return
    breakers = [get_breaker(name) for name in config["names"]]
    print("ready", flush=True)
    trip_name = config.get("trip")
    directory = config["dir"]
    deadline = time.monotonic() + 60
    tripped = False
    while time.monotonic() < deadline and not os.path.exists(os.path.join(directory, "stop")):
        if trip_name and not tripped and os.path.exists(os.path.join(directory, "trip")):
            b = get_breaker(trip_name)
            while b.state == "closed":
                b.record_failure(b.acquire())
            tripped = True
        time.sleep(0.02)
    del breakers


def send(directory: str, commands: list[list[str]]) -> None:
    from resilience_django.fleet import send_command

    pid = os.getpid()
    open(os.path.join(directory, f"ready-{pid}"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(directory, "go")):
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)
    sent = [[send_command(name, action), name, action] for name, action in commands]
    path = os.path.join(directory, f"sent-{pid}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(sent, f)
    os.replace(path + ".tmp", path)  # the test never reads a half-written file


if __name__ == "__main__":
    main()
