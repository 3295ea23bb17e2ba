"""``resilience_status`` on a big fleet: hundreds of processes, hundreds of breakers each."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from resilience_django import fleet
from resilience_django.breakers.registry import registry

PROCESSES, BREAKERS = 250, 400  # LocMemCache keeps 300 entries
SETTINGS = {"FLEET": {"PREFIX": "status-scale", "TTL": 300}, "RELOAD_INTERVAL": None}


@pytest.fixture(autouse=True)
def big_fleet() -> Iterator[None]:
    fleet.stop()
    registry.clear()
    with override_settings(RESILIENCE=SETTINGS):
        store = fleet.get_store()
        assert store is not None
        now = time.time()
        snaps = [
            {"name": f"dep-{b:03d}", "state": "closed", "calls": 10, "failure_rate": 0.1}
            for b in range(BREAKERS)
        ]
        for pid in range(1, PROCESSES + 1):
            report = {"host": f"web-{pid % 20}", "pid": pid, "time": now, "breakers": snaps}
            store.publish(f"web-{pid % 20}:{pid}", report, 300)
        yield
        fleet.stop()
    registry.clear()


def run(*args: str) -> str:
    out = StringIO()
    call_command("resilience_status", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_a_fleet_of_hundreds_of_processes_and_breakers_is_reported_in_seconds(
    args: tuple[str, ...],
) -> None:
    # 100,000 rows: one pass over them (about 1 s here), not one per breaker (20 to 40 s):
    # the bound leaves a loaded machine ten times the linear time.
    started = time.perf_counter()
    text = run(*args)
    elapsed = time.perf_counter() - started
    if args:
        configured = json.loads(text)["configured_breakers"]
        assert len(configured) == BREAKERS
        assert configured[0]["processes"] == PROCESSES
        assert configured[0]["states"] == {"closed": PROCESSES}
    else:
        assert text.count("dep-000 ") == PROCESSES
    assert elapsed < 12, f"took {elapsed:.1f} s"
