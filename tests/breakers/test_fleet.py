from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from resilience_django.breakers import fleet
from resilience_django.breakers.fleet import FleetPublisher, fleet_snapshot, send_command
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.breakers.store import CacheStore, RedisStore
from resilience_django.clock import ManualClock
from tests.services import redis_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    fleet.stop()
    registry.clear()
    yield
    fleet.stop()
    registry.clear()


def local_store() -> CacheStore:
    return CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")


def publisher(store: Any, *breakers: Breaker, clock: ManualClock) -> FleetPublisher:
    pub = FleetPublisher(store, lambda: list(breakers), ttl=10, clock=clock)
    for b in breakers:
        pub.attach(b)
    return pub


def test_tick_publishes_a_snapshot_of_every_breaker() -> None:
    clock = ManualClock(0)
    store = local_store()
    b = Breaker("pricing", BreakerPolicy(failure_threshold=1), clock=clock)
    b.record_failure(b.acquire())
    publisher(store, b, clock=clock).tick()
    (proc,) = store.processes(10)
    assert proc["pid"] == os.getpid()
    (snap,) = proc["breakers"]
    assert snap["name"] == "pricing" and snap["state"] == "open"
    assert snap["last_transition"]["reason"] == "1 consecutive failures"


def test_commands_reach_existing_breakers_and_wait_for_new_ones() -> None:
    clock = ManualClock(0)
    store = local_store()
    a = Breaker("a", clock=clock)
    pub = publisher(store, a, clock=clock)
    store.send_command("a", "force_open")
    store.send_command("b", "disable")
    pub.tick()
    assert a.state == "forced_open"
    b = Breaker("b", clock=clock)
    pub.attach(b)  # the registry does this when the process first uses "b"
    assert b.state == "disabled"
    store.send_command("a", "reset")
    clock.advance(0.5)
    pub.tick()
    assert a.state == "closed"
    clock.advance(0.5)
    a.force_open()
    pub.tick()  # no new command: nothing re-applied
    assert a.state == "forced_open"


def test_shared_open_marker_opens_the_breaker_in_other_processes() -> None:
    clock = ManualClock(0)
    store = local_store()
    policy = BreakerPolicy(failure_threshold=1, shared=True, shared_poll=0.2, open_for=30)
    here, there = Breaker("s", policy, clock=clock), Breaker("s", policy, clock=clock)
    pub_here, pub_there = publisher(store, here, clock=clock), publisher(store, there, clock=clock)
    here.record_failure(here.acquire())
    from resilience_django.breakers import events

    assert events.flush()
    pub_here.tick()  # writes the marker
    pub_there.tick()
    assert there.state == "open"
    assert there.snapshot()["retry_after"] == pytest.approx(30, abs=1)
    assert there.last_transition is not None
    assert there.last_transition.reason == fleet.SHARED_REASON


def test_an_unreachable_store_never_kills_the_fleet_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            def fail(*args: Any) -> Any:
                raise ConnectionError("store down")

            return fail

    pub = FleetPublisher(Broken(), lambda: [Breaker("x")], interval=0.01, command_poll=0.01)  # type: ignore[arg-type]
    pub.start()
    time.sleep(0.2)
    assert pub._thread is not None and pub._thread.is_alive()
    pub.stop()
    assert "store down" in caplog.text


# -- several real processes -------------------------------------------------------------


class Workers:
    def __init__(self, config: dict[str, Any], directory: Path, count: int) -> None:
        self.directory = directory
        self.procs = []
        for i in range(count):
            worker_config = {**config, "dir": str(directory), "trip": "shared" if i == 0 else None}
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.breakers.fleet_worker",
                        json.dumps(worker_config),
                    ],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    stdout=subprocess.DEVNULL,
                )
            )

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def stop(self) -> None:
        (self.directory / "stop").touch()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def states(name: str, pids: set[int]) -> dict[int, str]:
    return {
        r["pid"]: r["state"] for r in fleet_snapshot() if r["name"] == name and r["pid"] in pids
    }


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not true after {timeout}s")


BREAKERS = {
    "pricing": {"failure_threshold": 3},
    "shared": {"failure_threshold": 2, "open_for": "30s", "shared": True, "shared_poll": 100},
}


def run_fleet_scenario(
    resilience: dict[str, Any], caches: dict[str, Any] | None, tmp: Path
) -> None:
    config = {"resilience": resilience, "caches": caches, "names": ["pricing", "shared"]}
    workers = Workers(config, tmp, 3)
    try:
        pids = workers.pids
        wait_for(lambda: set(states("shared", pids)) == pids == set(states("pricing", pids)), 60)
        assert set(states("shared", pids).values()) == {"closed"}

        send_command("pricing", "force_open")
        took = wait_for(lambda: set(states("pricing", pids).values()) == {"forced_open"}, 10)
        print(f"force_open reached {len(pids)} processes in {took:.2f}s")

        (tmp / "trip").touch()  # worker 0 opens "shared"; the others follow the marker
        took = wait_for(lambda: set(states("shared", pids).values()) == {"open"}, 10)
        print(f"shared open reached {len(pids)} processes in {took:.2f}s")
        reasons = {
            r["pid"]: r["last_transition"]["reason"]
            for r in fleet_snapshot()
            if r["name"] == "shared" and r["pid"] in pids
        }
        assert sum(reason == fleet.SHARED_REASON for reason in reasons.values()) == 2

        send_command("pricing", "reset")
        wait_for(lambda: set(states("pricing", pids).values()) == {"closed"}, 10)

        victim = workers.procs[2]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        wait_for(lambda: victim.pid not in {r["pid"] for r in fleet_snapshot()}, 15)
    finally:
        workers.stop()


@pytest.mark.redis
def test_fleet_over_redis_commands_shared_open_and_age_out(tmp_path: Path) -> None:
    import redis

    url = redis_url()
    prefix = f"test:fleet:{uuid.uuid4().hex}"
    resilience = {"FLEET": {"URL": url, "PREFIX": prefix, "TTL": 2}, "BREAKERS": BREAKERS}
    try:
        with override_settings(RESILIENCE=resilience):
            run_fleet_scenario(resilience, None, tmp_path)
    finally:
        fleet.stop()
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match="{" + prefix + "}*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_fleet_over_a_file_based_django_cache(tmp_path: Path) -> None:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "fleet": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        },
    }
    resilience = {"FLEET": {"CACHE": "fleet", "TTL": 2}, "BREAKERS": BREAKERS}
    with override_settings(RESILIENCE=resilience, CACHES=caches):
        run_fleet_scenario(resilience, caches, tmp_path)


@pytest.mark.redis
def test_redis_store_keeps_the_latest_command_per_breaker() -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    try:
        v1 = store.send_command("a", "force_open")
        v2 = store.send_command("a", "reset")
        store.send_command("b", "disable")
        assert v2 > v1 and store.command_version() == 3
        assert {k: v["action"] for k, v in store.commands().items()} == {
            "a": "reset",
            "b": "disable",
        }
        store.set_open_until("a", time.time() + 5)
        assert set(store.open_until(["a", "b"])) == {"a"}
    finally:
        keys = list(client.scan_iter(match=store.p + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def _child_sleeps() -> None:
    time.sleep(4)


def test_a_forked_worker_publishes_under_its_own_pid(tmp_path: Path) -> None:
    import multiprocessing
    import warnings

    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "fleet": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        },
    }
    with override_settings(RESILIENCE={"FLEET": {"CACHE": "fleet"}}, CACHES=caches):
        registry.get("preloaded")  # made before the fork, as with gunicorn --preload
        assert fleet._publisher is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            child = multiprocessing.get_context("fork").Process(target=_child_sleeps)
            child.start()
        try:
            wait_for(lambda: child.pid in {r["pid"] for r in fleet_snapshot()}, 10)
        finally:
            child.terminate()
            child.join()
