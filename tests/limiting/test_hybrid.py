"""HybridLimiter: tripping, sharing, recovering, reporting; with a real throwaway Redis."""

from __future__ import annotations

import gc
import importlib
import logging
import time
import weakref
from collections.abc import Iterator

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.fallback import (
    UNKNOWN_INSTANCES,
    FallbackSettings,
    parse_fallback_settings,
)
from resilience_django.limiting.hybrid import HybridLimiter, build_hybrid_limiter
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate
from tests.services import free_port
from tests.utils.redis_server import RedisServer
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.redis

# By module path: the package re-exports the function under the same name.
health_module = importlib.import_module("resilience_django.limiting.health")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def make(url: str, budget: float = 0.05, **fallback: object) -> HybridLimiter:
    return build_hybrid_limiter(
        {"URL": url}, fallback_latency=budget, fallback=fallback, local=LocalLimiter()
    )


@pytest.fixture
def hybrid(server: RedisServer) -> Iterator[HybridLimiter]:
    limiter = make(server.url, 0.5)
    limiter._redis.client.flushdb()
    yield limiter
    limiter.close()


@pytest.fixture
def dead_url() -> str:
    # Nothing listens here: every connection is refused at once.
    return f"redis://127.0.0.1:{free_port()}/0"


CHECK = LimitCheck(Policy("orders", Rate(8, 3600.0), Algorithm.GCRA), "ip:1")


def test_decides_on_redis_while_healthy(hybrid: HybridLimiter) -> None:
    decision = hybrid.decide((CHECK,))
    assert decision.allowed and decision.backend == "redis"
    assert hybrid.health()["healthy"] is True


def test_redis_refusing_connections_never_raises_and_trips_after_three_failures(
    dead_url: str,
) -> None:
    limiter = make(dead_url)
    try:
        decisions = [limiter.decide((CHECK,)) for _ in range(4)]
        assert [d.backend for d in decisions] == ["local"] * 4
        assert limiter.fallback_active
        assert limiter.health()["consecutive_failures"] == 3
    finally:
        limiter.close()


def test_two_failures_do_not_trip(dead_url: str) -> None:
    limiter = make(dead_url)
    try:
        limiter.decide((CHECK,))
        limiter.decide((CHECK,))
        assert not limiter.fallback_active
    finally:
        limiter.close()


def test_transition_is_logged_at_warning_with_extra_fields(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make(dead_url, FAILURES=1)
    try:
        with caplog.at_level(logging.WARNING, logger="resilience_django.limiting"):
            limiter.decide((CHECK,))
        (record,) = [r for r in caplog.records if r.name == "resilience_django.limiting"]
        assert record.levelno == logging.WARNING
        assert record.limiter_backend == "local"  # type: ignore[attr-defined]
        assert record.fallback_active is True  # type: ignore[attr-defined]
        assert "ConnectionError" in record.reason  # type: ignore[attr-defined]
    finally:
        limiter.close()


def test_fallback_is_reported_in_metrics(dead_url: str) -> None:
    import prometheus_client

    limiter = make(dead_url, FAILURES=1)
    try:
        limiter.decide((CHECK,))
        value = prometheus_client.REGISTRY.get_sample_value("resilience_limiter_fallback_active")
        assert value == 1.0
        count = prometheus_client.REGISTRY.get_sample_value(
            "resilience_limiter_backend_seconds_count"
        )
        assert count is not None and count >= 1
    finally:
        limiter.close()


def test_each_instance_enforces_its_share_while_falling_back(server: RedisServer) -> None:
    # Four instances heartbeat into one Redis; then Redis goes away for them.
    limiters = [make(server.url, 0.5, HEARTBEAT_TTL="300ms") for _ in range(4)]
    try:
        for limiter in limiters:
            limiter.heartbeat_key = "rl:share-test"
        # A count is trusted once it is a heartbeat TTL old (test_hybrid_cold_share.py).
        limiter = limiters[0]
        wait_for(
            lambda: (
                [each.probe() for each in limiters] == [True] * 4
                and limiter.health()["share"] == 0.25
            ),
            10,
            "four instances counted",
        )
        assert limiter.health()["live_instances"] == 4
        limiter._redis = make(f"redis://127.0.0.1:{free_port()}/0")._redis
        check = LimitCheck(Policy("orders", Rate(8, 3600.0), Algorithm.TOKEN_BUCKET), "ip:1")
        allowed = [limiter.decide((check,)).allowed for _ in range(10)]
        # Three calls trip the backend (each decided locally at 8 / 4 = 2);
        # the last known count (4) holds during the outage.
        assert limiter.fallback_active and limiter.health()["share"] == 0.25
        assert sum(allowed) == 2
    finally:
        for limiter in limiters:
            limiter.close()


@pytest.mark.parametrize(
    ("fallback", "share"),
    # Without either, before any heartbeat: a guess of ten instances, never "alone".
    [({"INSTANCES": 5}, 0.2), ({"SHARE": 0.5}, 0.5), ({}, 1 / UNKNOWN_INSTANCES)],
)
def test_settings_can_fix_the_count_or_the_share(fallback: dict[str, object], share: float) -> None:
    limiter = make("redis://127.0.0.1:1/0", **fallback)
    assert limiter.health()["share"] == share
    limiter.close()


def test_recovery_needs_consecutive_good_probes(server: RedisServer, dead_url: str) -> None:
    limiter = make(server.url, 0.5, FAILURES=1, RECOVERY_PROBES=2)
    healthy_redis = limiter._redis
    try:
        limiter._redis = make(dead_url)._redis
        limiter.decide((CHECK,))
        assert limiter.fallback_active
        limiter._redis = healthy_redis
        assert limiter.probe() and limiter.fallback_active
        assert limiter.probe() and not limiter.fallback_active
        assert limiter.decide((CHECK,)).backend == "redis"
    finally:
        limiter.close()


def test_a_failed_probe_resets_the_recovery_count(server: RedisServer, dead_url: str) -> None:
    limiter = make(server.url, 0.5, FAILURES=1, RECOVERY_PROBES=2)
    healthy, dead = limiter._redis, make(dead_url)._redis
    try:
        limiter._redis = dead
        limiter.decide((CHECK,))
        limiter._redis = healthy
        assert limiter.probe()
        limiter._redis = dead
        assert not limiter.probe()
        limiter._redis = healthy
        assert limiter.probe() and limiter.fallback_active
        assert limiter.probe() and not limiter.fallback_active
    finally:
        limiter.close()


def test_probe_survives_script_flush(hybrid: HybridLimiter) -> None:
    assert hybrid.probe()
    hybrid._redis.client.script_flush()
    assert hybrid.probe()


def test_health_reports_the_registered_limiter(hybrid: HybridLimiter) -> None:
    hybrid.decide((CHECK,))
    report = health_module.health()
    assert report["backend"] == "redis"
    assert report["fallback_active"] is False
    assert report["last_latency_ms"] is not None and report["last_latency_ms"] < 500
    health_module.register(None)
    assert health_module.health()["backend"] == "local"


def test_a_closed_limiter_is_no_longer_the_one_health_reports_on(server: RedisServer) -> None:
    limiter = make(server.url, 0.5)
    assert health_module.health()["backend"] == "redis"
    limiter.close()
    assert health_module.health()["backend"] == "local"


async def test_async_path_trips_and_answers_locally(dead_url: str) -> None:
    limiter = make(dead_url)
    try:
        decisions = [await limiter.adecide((CHECK,)) for _ in range(4)]
        assert [d.backend for d in decisions] == ["local"] * 4
        assert limiter.fallback_active
    finally:
        await limiter.aclose()


async def test_async_path_decides_on_redis(hybrid: HybridLimiter) -> None:
    decision = await hybrid.adecide((CHECK,))
    assert decision.backend == "redis" and decision.allowed
    await hybrid.aclose()


@pytest.mark.parametrize(
    "value",
    [{"FAILURES": 0}, {"SHARE": 2}, {"INSTANCES": 0}, {"PROBE_INTERVAL": "soon"}, {"NOPE": 1}],
)
def test_bad_fallback_settings_raise_config_error(value: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fallback_settings(value)
    assert info.value.check_id == "resilience.E041"


def test_fallback_defaults() -> None:
    assert parse_fallback_settings(None) == FallbackSettings()


def test_a_dropped_limiter_is_collected_and_its_probe_thread_ends(server: RedisServer) -> None:
    limiter = make(server.url, 0.5, PROBE_INTERVAL="20ms")
    limiter.decide((CHECK,))  # starts the probe
    thread = limiter._probe
    assert thread is not None and thread.is_alive()
    ref = weakref.ref(limiter)
    health_module.register(None)
    redis_limiter = limiter._redis
    del limiter
    # The probe thread holds the limiter only while a probe runs (every 20 ms, and
    # on a loaded machine a probe can take a while): collected once none runs.
    deadline = time.monotonic() + 10
    gc.collect()
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
        gc.collect()
    assert ref() is None
    thread.join(timeout=10)
    assert not thread.is_alive()
    redis_limiter.close()


def test_an_error_reply_counts_as_a_failure_and_is_decided_locally(
    hybrid: HybridLimiter,
) -> None:
    # A corrupt state makes the script fail with an error reply.  Whatever the
    # layout of the rule's state keys (all carry the client's hash tag), each is
    # overwritten; the heartbeat's key is left alone.
    client = hybrid._redis.client
    # Room for the local share (a young count gives a tenth) after the admitted unit.
    check = LimitCheck(Policy("orders", Rate(100, 3600.0), Algorithm.GCRA), "ip:1")
    assert hybrid.decide((check,)).backend == "redis"
    corrupted = list(client.scan_iter(match="rl:{ip:1}*"))
    assert corrupted
    for key in corrupted:
        client.set(key, "not a number")
    decision = hybrid.decide((check,))
    assert decision.backend == "local" and decision.allowed
    assert hybrid.health()["consecutive_failures"] == 1
    assert "ResponseError" in hybrid.health()["last_error"]


@pytest.mark.parametrize(("fallback", "admitted"), [({"INSTANCES": 4}, 10), ({}, 4)])
def test_a_worker_that_never_reached_redis_enforces_a_share_not_the_whole_limit(
    dead_url: str, fallback: dict[str, object], admitted: int
) -> None:
    # A fleet started during an outage: each worker's share bounds the fleet.
    limiter = make(dead_url, **fallback)
    check = LimitCheck(Policy("outage", Rate(40, 3600.0), Algorithm.TOKEN_BUCKET), "ip:1")
    try:
        allowed = [limiter.decide((check,)).allowed for _ in range(50)]
        assert limiter.fallback_active
        assert sum(allowed) == admitted
    finally:
        limiter.close()


def test_the_first_heartbeat_counts_the_fleet_without_judging_redis(dead_url: str) -> None:
    limiter = make(dead_url)
    try:
        assert not limiter.probe(judge=False)
        assert limiter.health()["consecutive_failures"] == 0
    finally:
        limiter.close()


def test_units_redis_admitted_are_charged_to_the_local_share(server: RedisServer) -> None:
    # Two instances: this one's share of 10/h is 5, and Redis admits it 5.
    limiter = make(server.url, 0.5, INSTANCES=2, FAILURES=100)
    limiter._redis.client.flushdb()
    check = LimitCheck(Policy("spent", Rate(10, 3600.0), Algorithm.SLIDING_WINDOW), "ip:1")
    try:
        assert [limiter.decide((check,)).backend for _ in range(5)] == ["redis"] * 5
        # Redis stops answering (these calls may still have run there): the
        # local decisions find this process's share already spent.
        limiter._redis = make(f"redis://127.0.0.1:{free_port()}/0")._redis
        decisions = [limiter.decide((check,)) for _ in range(5)]
        assert {d.backend for d in decisions} == {"local"}
        assert not any(d.allowed for d in decisions)
    finally:
        limiter.close()


def test_a_closed_limiter_starts_no_probe_again(server: RedisServer) -> None:
    # A settings change closes the old limiter while requests still hold it: their
    # decisions must not restart its probe (it would heartbeat a phantom instance,
    # shrinking every worker's share, and report its own fallback state).
    limiter = make(server.url, 0.5)
    limiter.decide((CHECK,))
    limiter.close()
    assert limiter._probe is None
    assert limiter.decide((CHECK,)).allowed
    assert limiter._probe is None
    limiter.close()
