"""A fleet store on a Redis Cluster that is down when the process starts: building the
store does no network I/O and never raises, and the cluster is used once it is up.

redis-py's sync ``RedisCluster`` connects (and raises if no node answers) when built:
real redis-server processes, started by the test after the store is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from resilience_django import fleet, fleetstore
from resilience_django.fleetstore.redis import RedisStore
from resilience_django.runtime import reset_runtime
from tests.utils.redis_server import RedisCluster
from tests.utils.waiting import wait_for

pytestmark = [pytest.mark.redis]


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster()  # its ports are chosen, nothing listens on them yet
    try:
        yield cluster
    finally:
        fleet.stop()
        cluster.stop()


def _settings(cluster: RedisCluster, **extra: Any) -> dict[str, Any]:
    return {
        "BACKEND": "redis",
        "REDIS": {"URL": cluster.url, "CLUSTER": True},
        "FLEET": {"PREFIX": "cold-cluster", "TTL": 30},
        "RELOAD_INTERVAL": None,
        **extra,
    }


def _publishes(store: Any) -> bool:
    try:
        store.publish("here:1", {"host": "here", "pid": 1}, 30)
    except Exception:
        return False
    return True


def test_a_store_built_while_the_cluster_is_down_uses_it_once_it_is_up(
    cluster: RedisCluster,
) -> None:
    with override_settings(RESILIENCE=_settings(cluster)):
        fleetstore.reset()
        store = fleetstore.get_store()  # connected (and raised) when built, before
        assert isinstance(store, RedisStore)
        assert not _publishes(store)  # down: the call raises, its caller logs and retries
        cluster.start()
        wait_for(lambda: _publishes(store), 20, "the store reaches the cluster")
        assert fleetstore.get_store() is store  # the same store, not a rebuilt one
        # Among the processes: a breaker made by a thread an earlier test left behind
        # reports this process too while these settings are in force.
        assert {"host": "here", "pid": 1} in store.processes(30)
        assert store.send_command("pricing", "force_open") == 1


def test_a_worker_started_while_the_cluster_is_down_joins_the_fleet_once_it_is_up(
    cluster: RedisCluster, client: Any
) -> None:
    import os

    resilience = _settings(cluster, FALLBACK={"INSTANCES": 2})
    with override_settings(RESILIENCE=resilience, ROOT_URLCONF="tests.limiting.urls"):
        fleet.stop()
        reset_runtime()
        # The runtime is built (and the fleet reporting started) by this first request.
        assert client.get("/sync-ip/").status_code == 200
        cluster.start()
        store = fleetstore.get_store()

        def reported() -> bool:
            try:
                return any(p.get("pid") == os.getpid() for p in store.processes(30))
            except Exception:
                return False

        wait_for(reported, 30, "this process reports to the fleet in the cluster")
