"""Web servers whose clocks disagree (docs/deployment.md, "When something fails"): every live
process stays in the fleet view, whichever host publishes or reads."""

from __future__ import annotations

import time
import types
import uuid
from collections.abc import Iterator

import pytest

from resilience_django.fleetstore import redis as redis_store
from resilience_django.fleetstore.redis import RedisStore
from tests.services import redis_url

SKEW = 60.0  # far more than the TTL


@pytest.fixture
def store() -> Iterator[RedisStore]:
    import redis

    client = redis.Redis.from_url(redis_url())
    store = RedisStore(client, f"test:fleet:{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        keys = list(client.scan_iter(match=store.p + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def _on_a_host_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = types.SimpleNamespace(time=lambda: time.time() + SKEW)
    monkeypatch.setattr(redis_store, "time", ahead)


@pytest.mark.redis
def test_a_host_whose_clock_runs_ahead_does_not_hide_the_others(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish("slow-host:1", {"host": "slow-host", "pid": 1}, 10)
    with monkeypatch.context() as patch:
        _on_a_host_ahead(patch)
        store.publish("fast-host:2", {"host": "fast-host", "pid": 2}, 10)
    assert {p["host"] for p in store.processes(10)} == {"slow-host", "fast-host"}
    with monkeypatch.context() as patch:
        _on_a_host_ahead(patch)  # the dashboard served by the host ahead
        assert {p["host"] for p in store.processes(10)} == {"slow-host", "fast-host"}


@pytest.mark.redis
def test_a_process_still_disappears_after_its_ttl_whatever_the_clocks(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish("gone:1", {"host": "gone", "pid": 1}, 0.2)
    with monkeypatch.context() as patch:
        _on_a_host_ahead(patch)
        store.publish("live:2", {"host": "live", "pid": 2}, 30)
    deadline = time.monotonic() + 10
    while {p["host"] for p in store.processes(30)} != {"live"}:
        assert time.monotonic() < deadline, "the silent process is still listed"
        time.sleep(0.05)


def test_the_cache_store_keeps_hosts_whose_clocks_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.core.cache.backends.locmem import LocMemCache

    from resilience_django.fleetstore import cache as cache_store
    from resilience_django.fleetstore.cache import CacheStore

    store = CacheStore(LocMemCache(f"fleet-{uuid.uuid4().hex}", {}), "t")
    store.publish("slow-host:1", {"host": "slow-host", "pid": 1}, 10)
    with monkeypatch.context() as patch:
        patch.setattr(cache_store, "time", types.SimpleNamespace(time=lambda: time.time() + SKEW))
        store.publish("fast-host:2", {"host": "fast-host", "pid": 2}, 10)
        assert {p["host"] for p in store.processes(10)} == {"slow-host", "fast-host"}
    assert {p["host"] for p in store.processes(10)} == {"slow-host", "fast-host"}
