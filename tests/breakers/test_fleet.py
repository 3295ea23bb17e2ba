from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from resilience_django import fleet
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.clock import ManualClock
from resilience_django.fleet import FleetPublisher, fleet_snapshot, send_command
from resilience_django.fleetstore import base as store_module
from resilience_django.fleetstore import command_seq
from resilience_django.fleetstore.cache import CacheStore
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url
from tests.utils.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("no_fleet")


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
    calls: list[str] = []

    class Broken:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            def fail(*args: Any) -> Any:
                calls.append(name)
                raise ConnectionError("store down")

            return fail

    pub = FleetPublisher(Broken(), lambda: [Breaker("x")], interval=0.01, command_poll=0.01)  # type: ignore[arg-type]
    pub.start()
    # Until the thread has failed many times over (a loaded machine runs it late).
    wait_for(lambda: len(calls) >= 10, 10)
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


def report_times(name: str, pids: set[int]) -> dict[int, float]:
    return {r["pid"]: r["time"] for r in fleet_snapshot() if r["name"] == name and r["pid"] in pids}


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

        # An operator's force-close sticks: the marker written before it opens nothing again.
        send_command("shared", "force_close")
        wait_for(lambda: set(states("shared", pids).values()) == {"closed"}, 10)
        closed_at = time.time()
        wait_for(lambda: min(report_times("shared", pids).values()) > closed_at + 1, 15)
        assert set(states("shared", pids).values()) == {"closed"}

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
def test_redis_store_numbers_every_command_and_keeps_the_latest_per_breaker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    try:
        v1 = store.send_command("a", "force_open")
        v2 = store.send_command("a", "reset")
        v3 = store.send_command("b", "disable")
        assert (v1, v2, v3) == (1, 2, 3)
        batch = store.read_commands(None)  # a process starting now
        assert batch.seen == 3 and batch.log == []
        assert {k: v["action"] for k, v in (batch.standing or {}).items()} == {
            "a": "reset",
            "b": "disable",
        }
        batch = store.read_commands(0)  # a process that was there all along
        assert [(c["seq"], c["breaker"], c["action"]) for c in batch.log] == [
            (1, "a", "force_open"),
            (2, "a", "reset"),
            (3, "b", "disable"),
        ]
        assert batch.standing is None and batch.seen == 3
        assert store.read_commands(3)[:4] == (None, [], 3, False)

        monkeypatch.setattr(store_module, "COMMAND_LOG", 2)
        for _ in range(3):
            store.send_command("b", "force_close")
        batch = store.read_commands(3)  # the log was trimmed past 3: start over
        assert batch.seen == 6 and batch.standing is not None
        assert batch.standing["b"]["seq"] == 6 and batch.standing["a"]["seq"] == 2

        store.set_open_until("a", time.time() + 5)
        assert set(store.open_until(["a", "b"])) == {"a"}
    finally:
        keys = list(client.scan_iter(match=store.p + "*"))
        if keys:
            client.delete(*keys)
        client.close()


class Recording(FleetPublisher):
    """A publisher that notes every command it applies, in the order it applies them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[tuple[int, str, str]] = []

    def _apply_command(self, breaker: Breaker, command: Any) -> None:
        self.applied.append((command_seq(command), breaker.name, str(command["action"])))
        super()._apply_command(breaker, command)


def test_a_command_sent_here_is_not_applied_twice_when_nothing_came_between() -> None:
    clock = ManualClock(0)
    store = local_store()
    a = Breaker("a", BreakerPolicy(failure_threshold=2), clock=clock)
    pub = Recording(store, lambda: [a], clock=clock, command_poll=0)
    pub.attach(a)
    epoch = pub.applying_here("a", "reset")
    a.reset()  # what send_command does here first
    a.record_failure(a.acquire())
    seq = store.send_command("a", "reset")
    pub.sent_here("a", seq, epoch)
    pub.tick()
    assert pub.applied == [] and a.snapshot()["consecutive_failures"] == 1


def test_a_command_sent_here_is_applied_again_after_an_earlier_one_from_elsewhere() -> None:
    clock = ManualClock(0)
    store = local_store()
    a = Breaker("a", clock=clock)
    pub = Recording(store, lambda: [a], clock=clock, command_poll=0)
    pub.attach(a)
    earlier = store.send_command("a", "force_close")  # another process, numbered first
    epoch = pub.applying_here("a", "force_open")
    a.force_open()
    mine = store.send_command("a", "force_open")
    pub.sent_here("a", mine, epoch)
    pub.tick()
    assert pub.applied == [(earlier, "a", "force_close"), (mine, "a", "force_open")]
    assert a.state == "forced_open"  # the last by number, not the last to arrive


def test_a_late_process_starts_from_the_standing_commands_once_the_log_expired() -> None:
    clock = ManualClock(0)
    store = local_store()
    store.send_command("a", "force_open")
    store.send_command("b", "disable")
    store.send_command("a", "reset")
    first = Recording(store, list, clock=clock, command_poll=0)
    first.tick()  # reads the log and saves the standing commands it found stale
    for seq in (1, 2, 3):
        store.cache.delete(f"t:cmd:{seq}")  # what COMMAND_TTL does a day later
    clock.advance(1)
    a, b = Breaker("a", clock=clock), Breaker("b", clock=clock)
    late = Recording(store, lambda: [a, b], clock=clock, command_poll=0)
    late.attach(a)
    late.attach(b)
    late.tick()
    assert sorted(late.applied) == [(2, "b", "disable"), (3, "a", "reset")]
    assert (a.state, b.state) == ("closed", "disabled")


def test_a_command_lost_from_the_cache_does_not_stall_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(0)
    store = local_store()
    a = Breaker("a", clock=clock)
    pub = Recording(store, lambda: [a], clock=clock, command_poll=0)
    pub.attach(a)
    pub.tick()
    for action in ("force_open", "reset", "disable"):
        store.send_command("a", action)
    store.cache.delete("t:cmd:2")  # evicted by the cache
    pub.tick()
    assert pub.applied == [(1, "a", "force_open"), (3, "a", "disable")]
    assert "command 2 is gone" in caplog.text


# -- many operators at once, in several processes ---------------------------------------

SENDERS, PER_SENDER = 5, 10


def _shared_stores() -> list[Any]:
    return [
        pytest.param("redis", marks=pytest.mark.redis, id="redis-fleet-store"),
        pytest.param("django-redis", marks=pytest.mark.redis, id="django-redis-cache"),
        pytest.param("file", id="file-based-cache"),
    ]


def _fleet_config(kind: str, tmp: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    prefix = f"test:fleet:{uuid.uuid4().hex}"
    if kind == "redis":
        return {"FLEET": {"URL": redis_url(), "PREFIX": prefix}}, None
    local = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if kind == "django-redis":
        fleet_cache = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url(),
            "KEY_PREFIX": prefix,
        }
    else:
        fleet_cache = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp / "cache"),
        }
    return {"FLEET": {"CACHE": "fleet", "PREFIX": prefix}}, {"default": local, "fleet": fleet_cache}


def _cleanup_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.parametrize("kind", _shared_stores())
def test_fifty_concurrent_commands_from_several_processes_are_all_applied_in_order(
    kind: str, tmp_path: Path
) -> None:
    resilience, caches = _fleet_config(kind, tmp_path)
    settings_kwargs: dict[str, Any] = {"RESILIENCE": resilience}
    if caches is not None:
        settings_kwargs["CACHES"] = caches
    rng = random.Random(12)
    plans = [
        [["contested", rng.choice(["force_open", "force_close"])] for _ in range(PER_SENDER)]
        for _ in range(SENDERS)
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with override_settings(**settings_kwargs):
            store = fleet.get_store()
            assert store is not None
            reader = Breaker("contested")
            pub = Recording(store, lambda: [reader], command_poll=0)
            pub.attach(reader)
            pub.tick()  # in the log from before the first command
            for plan in plans:
                config = {"resilience": resilience, "caches": caches, "dir": str(tmp_path)}
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.breakers.fleet_worker",
                         json.dumps({**config, "names": [], "send": plan})],
                        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                    )
                )  # fmt: skip
            pids = [p.pid for p in procs]

            def senders_ok() -> None:
                failed = [p.returncode for p in procs if p.poll() not in (None, 0)]
                assert not failed, f"a sender exited with {failed}"

            def all_ready() -> bool:
                senders_ok()
                return all((tmp_path / f"ready-{pid}").exists() for pid in pids)

            wait_for(all_ready, 60)
            (tmp_path / "go").touch()

            def all_read() -> bool:
                senders_ok()
                pub.tick()  # reading while the others are still sending
                return len(pub.applied) >= SENDERS * PER_SENDER

            wait_for(all_read, 60)
            wait_for(lambda: all((tmp_path / f"sent-{pid}.json").exists() for pid in pids), 30)
        sent = sorted(
            tuple(entry)
            for pid in pids
            for entry in json.loads((tmp_path / f"sent-{pid}.json").read_text())
        )
        versions = [v for v, _, _ in sent]
        assert len(set(versions)) == SENDERS * PER_SENDER  # no two commands share a number
        assert pub.applied == sent  # every command, each once, in sequence order
        last_action = sent[-1][2]
        assert reader.state == {"force_open": "forced_open", "force_close": "closed"}[last_action]
    finally:
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        fleet.stop()
        if kind != "file":
            _cleanup_redis(resilience["FLEET"]["PREFIX"])


def _child_sleeps() -> None:
    time.sleep(30)  # terminated by the test once seen: long enough for a loaded machine


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
            wait_for(lambda: child.pid in {r["pid"] for r in fleet_snapshot()}, 20)
        finally:
            child.terminate()
            child.join()


# -- what a process reports besides its breakers -----------------------------------------


def test_a_process_reports_its_limiter_health_and_rejections_of_the_last_minute() -> None:
    from resilience_django import metrics
    from resilience_django.limiting.health import register

    register(None)
    rule = f"fleet-report-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        metrics.request_rejected(rule, "rate_limited")
    store = local_store()
    publisher(store, clock=ManualClock(0)).tick()  # no breaker at all: it reports anyway
    (proc,) = store.processes(10)
    assert proc["limiter"]["backend"] == "local" and proc["backend"] == "local"
    (mine,) = [r for r in proc["rejections"] if r["labels"] == [rule, "rate_limited"]]
    assert mine["total"] == 3 and sum(n for _, n in mine["recent"]) == 3


def test_the_first_request_starts_reporting_without_any_breaker() -> None:
    from resilience_django.runtime import get_runtime, reset_runtime

    with override_settings(RESILIENCE={"FLEET": {"PREFIX": f"first-{uuid.uuid4().hex}"}}):
        reset_runtime()
        get_runtime()
        store = fleet.get_store()
        assert store is not None
        deadline = time.monotonic() + 10
        while not any(p.get("pid") == os.getpid() for p in store.processes(10)):
            assert time.monotonic() < deadline, "this process never reported"
            time.sleep(0.05)
        reset_runtime()


@pytest.mark.redis
def test_the_redis_fleet_store_uses_the_package_client_factory_with_bounded_timeouts() -> None:
    url = redis_url()
    with override_settings(RESILIENCE={"FLEET": {"URL": url, "PREFIX": "factory-test"}}):
        store = fleet.get_store()
        assert isinstance(store, RedisStore)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 1.0 and kwargs["socket_connect_timeout"] == 1.0
        assert store.client.get_retry().get_retries() == 0  # no retry multiplies the wait
