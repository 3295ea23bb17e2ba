"""Senders and a reader of the database fleet store in threads of one process.

``python -m tests.fleetstore.command_worker CONFIG`` where CONFIG is JSON:
``{"database": {...Django DATABASES entry...}, "threads": N, "per_thread": M}``.
It migrates, starts a reader polling :meth:`read_commands` while N threads send
M commands each, and prints ``{"sent": [...], "read": [...]}`` (sequence numbers).
"""

from __future__ import annotations

import json
import sys
import threading
import time

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

    from resilience_django.fleetstore.database import DatabaseStore

    call_command("migrate", verbosity=0)
    connections.close_all()
    store = DatabaseStore()
    total = config["threads"] * config["per_thread"]
    sent: list[int] = []
    read: list[int] = []
    lock = threading.Lock()
    go = threading.Event()

    def sender(i: int) -> None:
        go.wait()
        mine = [store.send_command(f"b{i % 3}", "force_open") for _ in range(config["per_thread"])]
        with lock:
            sent.extend(mine)
        connections.close_all()

    def reader() -> None:
        after = store.read_commands(None).seen
        deadline = time.monotonic() + 60
        go.set()
        while len(read) < total and time.monotonic() < deadline:
            batch = store.read_commands(after)
            read.extend(c["seq"] for c in batch.log)
            after = batch.seen
        connections.close_all()

    threads = [threading.Thread(target=reader)]
    threads += [threading.Thread(target=sender, args=(i,)) for i in range(config["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"sent": sent, "read": read}))


if __name__ == "__main__":
    main()
