"""The limiter's own round trip: replies read whole, errors mapped, stale sockets replaced."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from resilience_django.limiting import redis_wire
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import RedisSettings, make_sync_client
from resilience_django.limiting.redis_wire import AsyncWire, SyncWire
from resilience_django.units import Rate
from tests.utils.redis_server import RedisServer
from tests.utils.tcp_proxy import TcpProxy

ONE = (LimitCheck(Policy("one", Rate(1000, 3600.0)), "ip:1"),)
THREE = (
    *ONE,
    LimitCheck(Policy("two", Rate(1000, 3600.0), Algorithm.TOKEN_BUCKET), "ip:1"),
    LimitCheck(Policy("three", Rate(1000, 3600.0), Algorithm.GCRA), "ip:1"),
)


class _Sock:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def gettimeout(self) -> float | None:
        return None

    def recv(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class _Conn:
    def __init__(self, chunks: list[bytes]) -> None:
        self._sock: _Sock | None = _Sock(chunks)
        self.disconnects = 0

    def disconnect(self) -> None:
        self.disconnects += 1
        self._sock = None


class _Pool:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def get_connection(self) -> _Conn:
        return self.conn


def _wire(*chunks: bytes) -> tuple[SyncWire, _Conn]:
    conn = _Conn(list(chunks))
    return SyncWire(_Pool(conn)), conn


def test_a_reply_split_across_reads_is_read_whole() -> None:
    wire, conn = _wire(b"$1", b"0\r\n0123\r\n", b"4567\r", b"\n")
    assert wire.call(b"cmd") == b"0123\r\n4567"
    assert conn.disconnects == 0


def test_noscript_keeps_the_connection_and_raises_noscripterror() -> None:
    wire, conn = _wire(b"-NOSCRIPT No matching script. Please use EVAL.\r\n")
    with pytest.raises(NoScriptError):
        wire.call(b"cmd")
    assert conn.disconnects == 0


def test_other_error_replies_raise_and_drop_the_connection() -> None:
    # READONLY after a Sentinel failover: the next connect finds the new primary.
    wire, conn = _wire(b"-READONLY You can't write against a read only replica.\r\n")
    with pytest.raises(ResponseError):
        wire.call(b"cmd")
    assert conn.disconnects == 1


def test_a_closed_socket_mid_reply_raises_connectionerror_and_drops_it() -> None:
    wire, conn = _wire(b"$10\r\n0123")
    with pytest.raises(ConnectionError):
        wire.call(b"cmd")
    assert conn.disconnects == 1


def test_a_socket_timeout_raises_redis_timeouterror() -> None:
    wire, conn = _wire()

    def slow(size: int) -> bytes:
        raise builtins.TimeoutError("timed out")

    assert conn._sock is not None
    conn._sock.recv = slow  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        wire.call(b"cmd")
    assert conn.disconnects == 1


def test_a_nil_reply_fails_at_once_instead_of_waiting_for_more() -> None:
    from redis.exceptions import InvalidResponse

    wire, conn = _wire(b"$-1\r\n")
    with pytest.raises(InvalidResponse):
        wire.call(b"cmd")
    assert conn.disconnects == 1


def test_a_forked_child_forgets_the_parents_connections() -> None:
    wire, _ = _wire(b"$1\r\nx\r\n")
    wire.call(b"cmd")
    assert wire._free
    redis_wire._after_fork_in_child()
    assert not wire._free


# -- against a real Redis --------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def _limiter(url: str) -> RedisLimiter:
    settings = RedisSettings(url=url, socket_timeout=1.0, connect_timeout=1.0)
    client = make_sync_client(settings)
    client.flushdb()
    return RedisLimiter(client, settings=settings)


def _kill_clients(server: RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.client_kill_filter(_type="normal", skipme=True)
    admin.close()


@pytest.mark.redis
def test_an_idle_connection_redis_closed_is_replaced_without_a_failure(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = _limiter(server.url)
    try:
        assert limiter.decide(ONE).allowed
        _kill_clients(server)  # as a Redis restart in a quiet moment would
        monkeypatch.setattr(redis_wire, "IDLE_CHECK", 0.0)
        assert limiter.decide(ONE).backend == "redis"
    finally:
        limiter.close()


@pytest.mark.redis
async def test_async_idle_connection_redis_closed_is_replaced_without_a_failure(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = _limiter(server.url)
    try:
        assert (await limiter.adecide(ONE)).allowed
        _kill_clients(server)
        monkeypatch.setattr(redis_wire, "IDLE_CHECK", 0.0)
        assert (await limiter.adecide(ONE)).backend == "redis"
    finally:
        limiter.close()
        await limiter.aclose()


@pytest.mark.redis
async def test_a_timed_out_async_call_never_leaves_its_reply_for_the_next(
    server: RedisServer,
) -> None:
    with TcpProxy(server.port) as proxy:
        limiter = _limiter(f"redis://127.0.0.1:{proxy.port}/0")
        limiter.bound_async_calls(0.05)
        try:
            assert (await limiter.adecide(THREE)).allowed
            proxy.latency = 0.2
            with pytest.raises(asyncio.TimeoutError):
                await limiter.adecide(THREE)
            proxy.latency = 0.0
            await asyncio.sleep(0.3)  # the late reply has arrived by now
            decision = await limiter.adecide(ONE)
            assert [o.check for o in decision.outcomes] == list(ONE)
            assert decision.outcomes[0].remaining == 1000 - 3
        finally:
            limiter.close()
            await limiter.aclose()


@pytest.mark.redis
async def test_async_wire_maps_a_closed_connection_to_connectionerror(
    server: RedisServer,
) -> None:
    client: Any = redis.asyncio.Redis(port=server.port)
    wire = AsyncWire(client.connection_pool)
    try:
        assert await wire.call(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n") == b"hi"
        with pytest.raises(ResponseError):
            await wire.call(b"*1\r\n$4\r\nNOPE\r\n")
        assert await wire.call(b"*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n") == b"ok"
        _kill_clients(server)
        with pytest.raises(ConnectionError):
            await wire.call(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n")
        # The next call reconnects.
        assert await wire.call(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n") == b"hi"
    finally:
        await client.aclose()


# -- within: asyncio.timeout for one call -----------------------------------------


async def test_within_returns_the_result_in_time() -> None:
    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    assert await redis_wire.within(quick(), 1.0) == 7
    assert await redis_wire.within(quick(), None) == 7


async def test_within_raises_timeouterror_past_the_deadline_and_uncounts_its_cancel() -> None:
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(builtins.TimeoutError):
        await redis_wire.within(asyncio.sleep(1), 0.01)
    assert task.cancelling() == 0


async def test_within_lets_a_cancellation_from_elsewhere_through() -> None:
    started = asyncio.Event()

    async def waiter() -> None:
        started.set()
        await redis_wire.within(asyncio.sleep(1), 5.0)

    task = asyncio.create_task(waiter())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_within_inside_a_tighter_asyncio_timeout_leaves_the_outer_one_in_charge() -> None:
    with pytest.raises(builtins.TimeoutError):
        async with asyncio.timeout(0.01) as outer:
            await redis_wire.within(asyncio.sleep(1), 5.0)
    assert outer.expired()


@pytest.mark.redis
def test_a_black_holed_sync_call_times_out_within_the_socket_timeout(server: RedisServer) -> None:
    # The kernel keeps the timeout (SO_RCVTIMEO) instead of Python's poll: same bound.
    with TcpProxy(server.port) as proxy:
        settings = RedisSettings(
            url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.05, connect_timeout=0.05
        )
        limiter = RedisLimiter(make_sync_client(settings), settings=settings)
        try:
            assert limiter.decide(ONE).backend == "redis"
            proxy.blackhole = True
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                limiter.decide(ONE)
            assert time.monotonic() - start < 0.05 + 0.03
            proxy.blackhole = False
            assert limiter.decide(ONE).backend == "redis"
        finally:
            limiter.close()


# -- the pool keeps room for the reload and the probe -----------------------------


def _bounded_limiter(url: str, max_connections: int) -> RedisLimiter:
    settings = RedisSettings(
        url=url, socket_timeout=1.0, connect_timeout=1.0, max_connections=max_connections
    )
    client = make_sync_client(settings)
    client.flushdb()
    return RedisLimiter(client, settings=settings)


def test_a_burst_leaves_the_pool_room_for_the_script_reload_and_the_probe(
    server: RedisServer,
) -> None:
    import threading

    with TcpProxy(server.port) as proxy:
        limiter = _bounded_limiter(f"redis://127.0.0.1:{proxy.port}/0", max_connections=4)
        assert limiter.decide(ONE).allowed
        # Four decisions in flight at once take four connections.
        proxy.latency = 0.05
        barrier = threading.Barrier(4)

        def decide() -> None:
            barrier.wait()
            limiter.decide(ONE)

        threads = [threading.Thread(target=decide) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        proxy.latency = 0.0
        pool = limiter.client.connection_pool
        # The wire kept at most max_connections - 2: the pool can still hand out two.
        assert len(pool._in_use_connections) <= 2
        assert limiter.client.ping()  # what the health probe does, through the pool
        redis.Redis(port=server.port).script_flush()
        assert limiter.decide(ONE).allowed  # NOSCRIPT: reloaded through the pool
        limiter.client.close()


def test_with_a_single_connection_the_wire_keeps_none(server: RedisServer) -> None:
    limiter = _bounded_limiter(server.url, max_connections=1)
    redis.Redis(port=server.port).script_flush()
    for _ in range(3):
        assert limiter.decide(ONE).allowed
        assert limiter.client.ping()
    limiter.client.close()


async def test_async_burst_leaves_the_pool_room_for_the_script_reload(
    server: RedisServer,
) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(server.url, max_connections=3)
    wire = AsyncWire(client.connection_pool)
    script = b"return 'x'"
    sha = await client.script_load(script)
    command = b"*3\r\n$7\r\nEVALSHA\r\n$40\r\n" + sha.encode() + b"\r\n$1\r\n0\r\n"
    # Three round trips in flight at once take three connections.
    assert await asyncio.gather(*(wire.call(command) for _ in range(3))) == [b"x"] * 3
    assert len(wire._free) <= 1  # max_connections - 2
    await client.script_flush()
    with pytest.raises(NoScriptError):
        await wire.call(command)
    assert await client.script_load(script) == sha  # the pool still had a connection
    assert await wire.call(command) == b"x"
    await client.aclose()
