"""RedisLimiter against a real, throwaway redis-server: semantics, atomicity, NOSCRIPT."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import RedisSettings, make_sync_client
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.redis

ALGORITHMS = list(Algorithm)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def settings(server: RedisServer) -> RedisSettings:
    return RedisSettings(url=server.url, socket_timeout=1.0, connect_timeout=1.0)


@pytest.fixture
def limiter(settings: RedisSettings, server: RedisServer) -> Iterator[RedisLimiter]:
    client = make_sync_client(settings)
    client.flushdb()
    yield RedisLimiter(client, settings=settings)
    client.close()


@pytest.fixture
async def async_limiter(limiter: RedisLimiter) -> AsyncIterator[RedisLimiter]:
    """The same limiter for async tests, its asyncio client closed on the test's own loop."""
    yield limiter
    await limiter.aclose()


def policy(name: str, rate: str = "5/h", algorithm: Algorithm = Algorithm.SLIDING_WINDOW,
           burst: int | None = None) -> Policy:  # fmt: skip
    limit, period = rate.split("/")
    seconds = {"s": 1.0, "m": 60.0, "h": 3600.0}[period]
    return Policy(name, Rate(int(limit), seconds), algorithm, burst)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_admits_exactly_the_limit_then_rejects_with_retry_after(
    limiter: RedisLimiter, algorithm: Algorithm
) -> None:
    check = LimitCheck(policy("r", "5/h", algorithm), "ip:1")
    decisions = [limiter.decide((check,)) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.outcomes[0].remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(d.backend == "redis" for d in decisions)
    rejected = decisions[-1]
    assert rejected.outcomes[0].remaining == 0
    # 5/h: the next unit frees up no sooner than 12 minutes (token bucket and
    # GCRA) and within the hour (sliding window, when its oldest bucket leaves).
    assert 700 < rejected.retry_after <= 3600
    assert 0 < rejected.outcomes[0].reset_after <= 3600


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_clients_are_counted_apart(limiter: RedisLimiter, algorithm: Algorithm) -> None:
    p = policy("r", "1/h", algorithm)
    assert limiter.decide((LimitCheck(p, "ip:1"),)).allowed
    assert not limiter.decide((LimitCheck(p, "ip:1"),)).allowed
    assert limiter.decide((LimitCheck(p, "ip:2"),)).allowed


@pytest.mark.parametrize("algorithm", [Algorithm.TOKEN_BUCKET, Algorithm.GCRA])
def test_burst_sets_capacity(limiter: RedisLimiter, algorithm: Algorithm) -> None:
    check = LimitCheck(policy("r", "2/h", algorithm, burst=4), "k")
    assert [limiter.decide((check,)).allowed for _ in range(5)] == [True] * 4 + [False]


def test_cost_above_capacity_never_fits_and_says_retry_after_period(
    limiter: RedisLimiter,
) -> None:
    check = LimitCheck(policy("r", "3/m", Algorithm.GCRA), "k", cost=4)
    decision = limiter.decide((check,))
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(60.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rejection_by_one_rule_consumes_no_other_rule(
    limiter: RedisLimiter, algorithm: Algorithm
) -> None:
    wide = LimitCheck(policy("wide", "10/h", algorithm), "ip:1")
    narrow = LimitCheck(policy("narrow", "2/h", algorithm), "ip:1")
    results = [limiter.decide((wide, narrow)) for _ in range(5)]
    assert [d.allowed for d in results] == [True, True, False, False, False]
    assert [o.check for o in results[-1].outcomes if not o.allowed] == [narrow]
    # Only the two admitted requests used the wide rule: 8 of 10 are left.
    alone = limiter.decide((wide,))
    assert alone.outcomes[0].remaining == 7


def test_keys_expire_by_themselves(limiter: RedisLimiter) -> None:
    for algorithm in ALGORITHMS:
        limiter.decide((LimitCheck(policy(algorithm.value, "5/m", algorithm), "ip:9"),))
    client = limiter.client
    keys = client.keys("rl:*")
    assert len(keys) == 3
    for key in keys:
        ttl = client.pttl(key)
        assert 0 < ttl <= 61_000, (key, ttl)


def _time_to_next_bucket(client: redis.Redis, period: float) -> float:
    """Seconds until the script's next sliding-window bucket starts, on Redis's clock."""
    seconds, micros = client.time()
    now = (seconds - 1_700_000_000) * 1_000_000 + micros
    width = period * 1_000_000 / 10
    return (width - now % width) / 1_000_000


def test_sliding_window_in_one_bucket_keeps_the_ttl_it_got_when_the_bucket_began(
    limiter: RedisLimiter,
) -> None:
    client = limiter.client
    check = LimitCheck(policy("a", "50/h"), "ip:9")  # buckets of 6 minutes
    while _time_to_next_bucket(client, 3600.0) < 5:  # rare: let the bucket turn first
        time.sleep(0.1)
    limiter.decide((check,))
    (key,) = client.keys("rl:*")
    first = client.pttl(key)
    deadline = time.monotonic() + 10
    while client.pttl(key) > first - 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert limiter.decide((check,)).outcomes[0].remaining == 48
    # Not pushed back to the period: the first write's TTL already outlives
    # the bucket in the window (and the window's state).
    assert client.pttl(key) <= first - 20


def test_sliding_window_ttl_is_renewed_when_a_new_bucket_becomes_the_newest(
    limiter: RedisLimiter,
) -> None:
    client = limiter.client
    check = LimitCheck(policy("a", "50/s"), "ip:9")  # buckets of 100 ms
    limiter.decide((check,))
    (key,) = client.keys("rl:*")
    time.sleep(_time_to_next_bucket(client, 1.0) + 0.01)
    before = client.pttl(key)
    assert limiter.decide((check,)).allowed
    after = client.pttl(key)
    assert before < after <= 1000


def test_keys_of_one_client_share_a_hash_tag(limiter: RedisLimiter) -> None:
    a = LimitCheck(policy("a", "5/m"), "ip:10.0.0.1")
    b = LimitCheck(policy("b", "5/m", Algorithm.GCRA), "ip:10.0.0.1")
    limiter.decide((a, b))
    keys = sorted(k.decode() for k in limiter.client.keys("rl:*"))
    assert keys == ["rl:{ip:10.0.0.1}:a:sw60000", "rl:{ip:10.0.0.1}:b:gc60000"]


def test_hostile_client_key_cannot_pick_the_hash_slot(limiter: RedisLimiter) -> None:
    limiter.decide((LimitCheck(policy("a", "5/m"), "header:}{evil"),))
    (key,) = limiter.client.keys("rl:*")
    assert b"evil" not in key and key.startswith(b"rl:{h:")


def test_noscript_after_script_flush_is_survived(limiter: RedisLimiter) -> None:
    check = LimitCheck(policy("r", "3/h"), "k")
    assert limiter.decide((check,)).allowed
    limiter.client.script_flush()
    assert limiter.decide((check,)).allowed
    assert limiter.decide((check,)).outcomes[0].remaining == 0


def test_one_round_trip_per_decision_whatever_the_rule_count(
    limiter: RedisLimiter, server: RedisServer
) -> None:
    checks = tuple(LimitCheck(policy(f"r{i}", "100/h", a), "k") for i, a in enumerate(ALGORITHMS))
    limiter.decide(checks)  # load the script
    stats = redis.Redis(port=server.port)
    before = stats.info("commandstats")
    for _ in range(10):
        limiter.decide(checks)
    after = stats.info("commandstats")
    stats.close()
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
    # Every decision is exactly one EVALSHA; commandstats also counts the
    # commands the script runs inside Redis, which are no round trips.
    assert calls.pop("cmdstat_evalsha") == 10
    inside = {"time", "get", "mget", "set", "setrange"}
    sent = {k for k, v in calls.items() if v and k.removeprefix("cmdstat_") not in inside}
    assert sent <= {"cmdstat_info"}


async def test_adecide_matches_decide_on_the_event_loop(async_limiter: RedisLimiter) -> None:
    check = LimitCheck(policy("r", "3/h", Algorithm.TOKEN_BUCKET), "k")
    results = [(await async_limiter.adecide((check,))).allowed for _ in range(4)]
    assert results == [True, True, True, False]
    assert async_limiter.decide((check,)).allowed is False
    await async_limiter.aclose()


async def test_adecide_survives_script_flush(async_limiter: RedisLimiter) -> None:
    check = LimitCheck(policy("r", "3/h"), "k")
    assert (await async_limiter.adecide((check,))).allowed
    async_limiter.client.script_flush()
    assert (await async_limiter.adecide((check,))).outcomes[0].remaining == 1
    await async_limiter.aclose()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_waiting_retry_after_is_enough_to_be_admitted_again(
    limiter: RedisLimiter, algorithm: Algorithm
) -> None:
    # Real time because the clock is Redis TIME; a short period keeps it quick.
    check = LimitCheck(Policy("slide", Rate(3, 0.3), algorithm), "k")
    # Until the first refusal: on a loaded machine a token (one per 100 ms) may come
    # back between the first call and the fourth.
    decisions = (limiter.decide((check,)) for _ in range(100))
    rejected = next(d for d in decisions if not d.allowed)
    assert 0 < rejected.retry_after <= 0.3
    time.sleep(rejected.retry_after + 0.01)
    assert limiter.decide((check,)).allowed


def test_state_is_forgotten_after_one_window(limiter: RedisLimiter) -> None:
    check = LimitCheck(Policy("short", Rate(2, 0.2), Algorithm.SLIDING_WINDOW), "k")
    assert [limiter.decide((check,)).allowed for _ in range(3)] == [True, True, False]
    time.sleep(0.25)
    assert limiter.client.keys("rl:*") == []
    assert limiter.decide((check,)).outcomes[0].remaining == 1


def test_each_event_loop_keeps_its_own_async_client(limiter: RedisLimiter) -> None:
    import asyncio

    checks = (LimitCheck(policy("loops", "100/h"), "client-l"),)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(limiter.adecide(checks))
        client_first = limiter._alast[1]  # type: ignore[index]
        second.run_until_complete(limiter.adecide(checks))
        assert limiter._alast[1] is not client_first  # type: ignore[index]
        # Back on the first loop: its client (and connection pool) is reused, not rebuilt.
        first.run_until_complete(limiter.adecide(checks))
        assert limiter._alast[1] is client_first  # type: ignore[index]
        assert len(limiter._aclients) == 2
        for loop in (first, second):
            client, _ = limiter._aclients[loop]
            loop.run_until_complete(client.aclose(close_connection_pool=True))  # type: ignore[call-arg]
    finally:
        first.close()
        second.close()


def _evalsha_calls(server: RedisServer, action: object) -> int:
    stats = redis.Redis(port=server.port)
    before = stats.info("commandstats").get("cmdstat_evalsha", {"calls": 0})["calls"]
    action()  # type: ignore[operator]
    after = stats.info("commandstats")["cmdstat_evalsha"]["calls"]
    stats.close()
    return int(after - before)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_enforced_and_shadow_checks_share_one_round_trip_each_group_on_its_own(
    limiter: RedisLimiter, server: RedisServer, algorithm: Algorithm
) -> None:
    enforced = (LimitCheck(policy(f"e-{algorithm}", "2/h", algorithm), "k"),)
    shadow = (LimitCheck(policy(f"s-{algorithm}", "1/h", algorithm), "k"),)
    limiter.decide_with_shadow(enforced, shadow)  # loads the script; e: 1 left, s: 0 left
    answers: list[tuple[bool, bool]] = []

    def decide() -> None:
        for _ in range(2):
            d, s = limiter.decide_with_shadow(enforced, shadow)
            assert s is not None
            answers.append((d.allowed, s.allowed))

    assert _evalsha_calls(server, decide) == 2  # one call per request, not two
    # The shadow group's rejection never blocked the enforced rule (its 2nd use
    # passed), and the enforced rejection did not stop the shadow count.
    assert answers == [(True, False), (False, False)]
    assert [o.check for o in limiter.decide((enforced[0],)).outcomes] == [enforced[0]]


async def test_async_enforced_and_shadow_checks_share_one_round_trip(
    async_limiter: RedisLimiter, server: RedisServer
) -> None:
    enforced = (LimitCheck(policy("ae", "5/h"), "k"),)
    shadow = (LimitCheck(policy("as", "1/h"), "k"), LimitCheck(policy("as2", "5/h"), "k"))
    await async_limiter.adecide_with_shadow(enforced, shadow)
    stats = redis.Redis(port=server.port)
    before = stats.info("commandstats")["cmdstat_evalsha"]["calls"]
    decision, shadow_decision = await async_limiter.adecide_with_shadow(enforced, shadow)
    after = stats.info("commandstats")["cmdstat_evalsha"]["calls"]
    stats.close()
    assert after - before == 1
    assert decision.allowed and shadow_decision is not None and not shadow_decision.allowed
    # The shadow group is all-or-nothing on its own: its rejection did not consume as2,
    # which has had one use (the first call); this use leaves 5 - 2 = 3.
    alone = await async_limiter.adecide((shadow[1],))
    assert alone.outcomes[0].remaining == 3


# -- redis-py's public client: timeouts, broken connections, one round trip --------


def _kill_clients(server: RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.client_kill_filter(_type="normal", skipme=True)
    admin.close()


def test_decisions_use_only_the_public_client_api() -> None:
    import importlib.util
    import inspect

    from resilience_django.limiting import redis as redis_module

    # The hand-made wire protocol (private _sock/_reader/BaseParser) is gone.
    assert importlib.util.find_spec("resilience_django.limiting.redis_wire") is None
    source = inspect.getsource(redis_module)
    assert "._sock" not in source and "_parsers" not in source


def test_an_idle_connection_redis_closed_is_replaced_without_a_failure(
    limiter: RedisLimiter, server: RedisServer
) -> None:
    check = (LimitCheck(policy("idle", "100/h"), "k"),)
    assert limiter.decide(check).backend == "redis"
    _kill_clients(server)  # as a Redis restart in a quiet moment would
    # redis-py notices the dead pooled socket and connects anew, or fails this
    # one call (the HybridLimiter then decides it locally); the next is fine.
    with contextlib.suppress(redis.ConnectionError):
        limiter.decide(check)
    assert limiter.decide(check).backend == "redis"


async def test_a_timed_out_async_call_never_leaves_its_reply_for_the_next(
    server: RedisServer,
) -> None:
    import asyncio

    from tests.utils.tcp_proxy import TcpProxy

    three = tuple(LimitCheck(policy(f"t{i}", "1000/h"), "k3") for i in range(3))
    one = three[:1]
    with TcpProxy(server.port) as proxy:
        settings = RedisSettings(
            url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=1.0, connect_timeout=1.0
        )
        client = make_sync_client(settings)
        client.flushdb()
        limiter = RedisLimiter(client, settings=settings)
        limiter.bound_async_calls(0.05)
        try:
            assert (await limiter.adecide(three)).allowed
            proxy.latency = 0.2
            with pytest.raises(asyncio.TimeoutError):
                await limiter.adecide(three)
            proxy.latency = 0.0
            await asyncio.sleep(0.3)  # the late reply has arrived by now
            decision = await limiter.adecide(one)
            assert [o.check for o in decision.outcomes] == list(one)
            # Whether or not the timed-out script ran, no reply went astray.
            assert decision.outcomes[0].remaining in (1000 - 2, 1000 - 3)
        finally:
            limiter.close()
            await limiter.aclose()


def test_a_black_holed_sync_call_times_out_within_the_socket_timeout(
    server: RedisServer,
) -> None:
    from tests.utils.tcp_proxy import TcpProxy

    check = (LimitCheck(policy("bh", "100/h"), "k"),)
    with TcpProxy(server.port) as proxy:
        settings = RedisSettings(
            url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.05, connect_timeout=0.05
        )
        limiter = RedisLimiter(make_sync_client(settings), settings=settings)
        try:
            assert limiter.decide(check).backend == "redis"
            proxy.blackhole = True
            start = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                limiter.decide(check)
            assert time.monotonic() - start < 0.05 + 0.05
            proxy.blackhole = False
            assert limiter.decide(check).backend == "redis"
        finally:
            limiter.close()


async def test_the_first_async_call_on_a_loop_loads_the_script_before_deciding(
    limiter: RedisLimiter, server: RedisServer
) -> None:
    admin = redis.Redis(port=server.port)
    admin.script_flush()
    admin.config_resetstat()
    try:
        assert (await limiter.adecide((LimitCheck(policy("warm", "100/h"), "k"),))).allowed
        assert admin.info("errorstats").get("errorstat_NOSCRIPT") is None
    finally:
        await limiter.aclose()
        admin.close()
