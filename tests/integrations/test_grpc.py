"""The gRPC interceptors against a real grpcio server on 127.0.0.1 (bytes in, bytes out)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager

import grpc
import grpc.aio
import pytest

from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import get_breaker
from resilience_django.breakers.state import CircuitOpen
from resilience_django.deadline import Deadline, DeadlineExceeded, _current
from resilience_django.integrations.grpc import (
    AsyncResilientClientInterceptor,
    ResilientClientInterceptor,
)
from tests.utils.waiting import holds_within

SERVICE = "test.Svc"
calls: Counter[str] = Counter()
_lock = threading.Lock()


def _count(name: str) -> None:
    with _lock:
        calls[name] += 1


def _deadline(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Answers with the deadline the server received, in seconds ("none" without one)."""
    _count("Deadline")
    left = context.time_remaining()
    return b"none" if left is None or left > 1e6 else repr(left).encode()


def _sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
    _count("Sleep")
    time.sleep(float(request))
    return b"slept"


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Fails with the status code named in the request (``b"OK"`` answers normally)."""
    _count("Fail")
    code = grpc.StatusCode[request.decode()]
    if code is not grpc.StatusCode.OK:
        context.abort(code, "as asked")
    return b"ok"


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """Three items, then the status code named in the request."""
    _count("Stream")
    yield from (b"1", b"2", b"3")
    code = grpc.StatusCode[request.decode()]
    if code is not grpc.StatusCode.OK:
        context.abort(code, "as asked")


def _slow_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """One item after 300 ms."""
    _count("SlowStream")
    time.sleep(0.3)
    yield b"late"


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    unary = grpc.unary_unary_rpc_method_handler
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Deadline": unary(_deadline),
                    "Sleep": unary(_sleep),
                    "Fail": unary(_fail),
                    "Stream": grpc.unary_stream_rpc_method_handler(_stream),
                    "SlowStream": grpc.unary_stream_rpc_method_handler(_slow_stream),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as raw:
        yield raw


def _client(
    channel: grpc.Channel, interceptor: ResilientClientInterceptor | None = None
) -> grpc.Channel:
    return grpc.intercept_channel(channel, interceptor or ResilientClientInterceptor(margin=0.05))


def _unary(channel: grpc.Channel, name: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/{SERVICE}/{name}")


Budget = Callable[..., Deadline]


@contextmanager
def within(seconds: float, spent: float = 0.0) -> Iterator[Deadline]:
    """Inside a request whose deadline of ``seconds`` has ``spent`` seconds gone."""
    deadline = Deadline(seconds, started_at=time.monotonic() - spent)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


@pytest.fixture
def budget() -> Iterator[Budget]:
    """``budget(seconds, spent=0.0)`` puts a sync test inside a request with that deadline."""
    with ExitStack() as stack:
        yield lambda seconds, spent=0.0: stack.enter_context(within(seconds, spent))


def _at_most(seconds: float) -> float:
    # grpc core may round the grpc-timeout it sends up ("encoding may round up
    # arbitrarily", timeout_encoding.h); a 10 s timeout arrives as about 10.1 s.
    return seconds * 1.01


def _fresh_breaker(name: str) -> str:
    get_breaker(name).reset()
    return name


# -- the deadline ---------------------------------------------------------------------


def test_remaining_budget_minus_margin_reaches_the_server(
    channel: grpc.Channel, budget: Budget
) -> None:
    deadline = budget(2.0)
    seen = float(_unary(_client(channel), "Deadline")(b""))
    spent = time.monotonic() - deadline.started_at
    # The server's deadline is what was left minus the 50 ms margin, less the time in flight.
    assert 1.95 - spent - 0.01 <= seen <= _at_most(1.95)


def test_a_shorter_timeout_of_the_caller_wins(channel: grpc.Channel, budget: Budget) -> None:
    budget(5.0)
    seen = float(_unary(_client(channel), "Deadline")(b"", timeout=0.5))
    assert 0.3 < seen <= _at_most(0.5)


def test_a_tighter_budget_wins_over_the_callers_timeout(
    channel: grpc.Channel, budget: Budget
) -> None:
    budget(0.5)
    seen = float(_unary(_client(channel), "Deadline")(b"", timeout=30))
    assert 0.2 < seen <= _at_most(0.45)


def test_outside_a_request_the_call_is_left_alone(channel: grpc.Channel) -> None:
    assert _unary(_client(channel), "Deadline")(b"") == b"none"
    assert 9 < float(_unary(_client(channel), "Deadline")(b"", timeout=10)) <= _at_most(10)


def test_the_budget_cuts_a_slow_call_short(channel: grpc.Channel, budget: Budget) -> None:
    budget(0.3)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        _unary(_client(channel), "Sleep")(b"2")
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.0


def test_a_spent_budget_never_calls(channel: grpc.Channel, budget: Budget) -> None:
    budget(1.0, spent=1.0)
    before = calls["Deadline"], calls["Stream"]
    client = _client(channel)
    with pytest.raises(DeadlineExceeded):
        _unary(client, "Deadline")(b"")
    with pytest.raises(DeadlineExceeded):
        _unary(client, "Deadline").future(b"").result()
    with pytest.raises(DeadlineExceeded):
        next(iter(client.unary_stream(f"/{SERVICE}/Stream")(b"OK")))
    assert (calls["Deadline"], calls["Stream"]) == before


def test_a_budget_smaller_than_the_margin_never_calls(
    channel: grpc.Channel, budget: Budget
) -> None:
    budget(0.04)  # less than the 50 ms margin: no time for the server to answer
    before = calls["Deadline"]
    with pytest.raises(DeadlineExceeded):
        _unary(_client(channel), "Deadline")(b"")
    assert calls["Deadline"] == before


# -- the breaker ----------------------------------------------------------------------


def test_failures_open_the_breaker_and_then_calls_never_reach_the_server(
    channel: grpc.Channel,
) -> None:
    name = _fresh_breaker("grpc-unavailable")
    fail = _unary(_client(channel, ResilientClientInterceptor(breaker=name)), "Fail")
    for _ in range(5):  # the default failure_threshold
        with pytest.raises(grpc.RpcError) as info:
            fail(b"UNAVAILABLE")
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    before = calls["Fail"]
    with pytest.raises(CircuitOpen) as refused:
        fail(b"OK")
    assert refused.value.retry_after > 0
    assert calls["Fail"] == before
    assert get_breaker(name).state == "open"


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"])
def test_every_default_failure_code_counts(channel: grpc.Channel, code: str) -> None:
    name = _fresh_breaker(f"grpc-{code.lower()}")
    fail = _unary(_client(channel, ResilientClientInterceptor(breaker=name)), "Fail")
    for _ in range(5):
        with pytest.raises(grpc.RpcError):
            fail(code.encode())
    assert get_breaker(name).state == "open"


def test_client_error_codes_and_successes_do_not_count(channel: grpc.Channel) -> None:
    name = _fresh_breaker("grpc-client-errors")
    fail = _unary(_client(channel, ResilientClientInterceptor(breaker=name)), "Fail")
    for code in ["INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "ALREADY_EXISTS"] * 3:
        with pytest.raises(grpc.RpcError):
            fail(code.encode())
    assert fail(b"OK") == b"ok"
    assert get_breaker(name).state == "closed"
    # Successes in between reset nothing they should not: five real failures still trip it.
    for _ in range(5):
        with pytest.raises(grpc.RpcError):
            fail(b"UNAVAILABLE")
    assert get_breaker(name).state == "open"


def test_the_failure_codes_are_configurable(channel: grpc.Channel) -> None:
    name = _fresh_breaker("grpc-custom-codes")
    interceptor = ResilientClientInterceptor(
        breaker=name, failure_codes={grpc.StatusCode.NOT_FOUND}
    )
    fail = _unary(_client(channel, interceptor), "Fail")
    for _ in range(5):
        with pytest.raises(grpc.RpcError):
            fail(b"UNAVAILABLE")  # not in the set any more
    assert get_breaker(name).state == "closed"
    for _ in range(5):
        with pytest.raises(grpc.RpcError):
            fail(b"NOT_FOUND")
    assert get_breaker(name).state == "open"


def test_a_future_is_judged_when_it_ends_without_blocking_the_caller(
    channel: grpc.Channel,
) -> None:
    name = _fresh_breaker("grpc-future")
    client = _client(channel, ResilientClientInterceptor(breaker=name))
    started = time.monotonic()
    slow = _unary(client, "Sleep").future(b"0.3")
    assert time.monotonic() - started < 0.2  # the interceptor did not wait for the answer
    assert slow.result() == b"slept"
    pending = [_unary(client, "Fail").future(b"UNAVAILABLE") for _ in range(5)]
    for future in pending:
        assert future.exception() is not None
    before = calls["Fail"]
    with pytest.raises(CircuitOpen):
        _unary(client, "Fail").future(b"OK").result()
    assert calls["Fail"] == before


def test_a_stream_is_judged_by_its_final_status(channel: grpc.Channel) -> None:
    name = _fresh_breaker("grpc-stream")
    stream = _client(channel, ResilientClientInterceptor(breaker=name)).unary_stream(
        f"/{SERVICE}/Stream"
    )
    assert list(stream(b"OK")) == [b"1", b"2", b"3"]
    for _ in range(5):
        received = []
        with pytest.raises(grpc.RpcError) as info:
            received.extend(stream(b"UNAVAILABLE"))
        assert received == [b"1", b"2", b"3"]
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    before = calls["Stream"]
    with pytest.raises(CircuitOpen):
        next(iter(stream(b"OK")))
    assert calls["Stream"] == before


def test_a_cancelled_call_is_no_verdict_on_the_dependency(channel: grpc.Channel) -> None:
    name = _fresh_breaker("grpc-cancelled")
    breaker = get_breaker(name)
    client = _client(channel, ResilientClientInterceptor(breaker=name))
    for _ in range(8):
        future = _unary(client, "Sleep").future(b"0.5")
        assert future.cancel()
    assert breaker.state == "closed"


# -- grpc.aio -------------------------------------------------------------------------


async def test_aio_sends_the_remaining_budget(target: str) -> None:
    async with grpc.aio.insecure_channel(
        target, interceptors=[AsyncResilientClientInterceptor(margin=0.05)]
    ) as channel:
        with within(2.0) as deadline:
            seen = float(await channel.unary_unary(f"/{SERVICE}/Deadline")(b""))
    spent = time.monotonic() - deadline.started_at
    assert 1.95 - spent - 0.01 <= seen <= _at_most(1.95)


async def test_aio_spent_budget_never_calls(target: str) -> None:
    before = calls["Deadline"]
    async with grpc.aio.insecure_channel(
        target, interceptors=[AsyncResilientClientInterceptor()]
    ) as channel:
        with within(1.0, spent=1.0), pytest.raises(DeadlineExceeded):
            await channel.unary_unary(f"/{SERVICE}/Deadline")(b"")
    assert calls["Deadline"] == before


async def test_aio_failures_open_the_breaker_and_refuse_without_calling(target: str) -> None:
    name = _fresh_breaker("grpc-aio")
    async with grpc.aio.insecure_channel(
        target, interceptors=[AsyncResilientClientInterceptor(breaker=name)]
    ) as channel:
        fail = channel.unary_unary(f"/{SERVICE}/Fail")
        for code in ("NOT_FOUND", "INVALID_ARGUMENT"):
            with pytest.raises(grpc.aio.AioRpcError):
                await fail(code.encode())
        assert get_breaker(name).state == "closed"
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await fail(b"UNAVAILABLE")
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        before = calls["Fail"]
        with pytest.raises(CircuitOpen):
            await fail(b"OK")
    assert calls["Fail"] == before


# -- a timeout the budget cut short is the caller's, not the dependency's ---------------


def _threshold_3(name: str) -> str:
    get_breaker(name).configure(BreakerPolicy(failure_threshold=3))
    return _fresh_breaker(name)


def test_calls_cut_short_by_tight_budgets_leave_the_breaker_closed(channel: grpc.Channel) -> None:
    name = _threshold_3("grpc-cut")
    sleep = _unary(_client(channel, ResilientClientInterceptor(breaker=name, margin=0.01)), "Sleep")
    before = calls["Sleep"]
    # Four calls must reach the server and run into their budget there (three failures
    # would open the breaker); on a loaded machine a call can spend its budget before
    # the server's handler starts, so send until four have started (at most 20).
    sent = 0
    while sent < 4 or (not holds_within(lambda: calls["Sleep"] - before >= 4, 1.0) and sent < 20):
        with within(0.1), pytest.raises(DeadlineExceeded) as info:
            sleep(b"0.3", timeout=5.0)
        # Still a grpc.RpcError with grpc's code, for code that catches those.
        assert isinstance(info.value, grpc.RpcError)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        sent += 1
    assert calls["Sleep"] - before >= 4
    assert get_breaker(name).state == "closed"
    with within(0.6):
        assert sleep(b"0.3") == b"slept"


def test_a_timeout_of_the_callers_own_still_counts_against_the_breaker(
    channel: grpc.Channel,
) -> None:
    name = _threshold_3("grpc-own-timeout")
    sleep = _unary(_client(channel, ResilientClientInterceptor(breaker=name, margin=0.01)), "Sleep")
    for _ in range(3):
        with within(5.0), pytest.raises(grpc.RpcError) as info:
            sleep(b"0.3", timeout=0.1)  # tighter than the budget: the caller's own
        assert not isinstance(info.value, DeadlineExceeded)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert get_breaker(name).state == "open"


def test_futures_and_streams_cut_short_by_the_budget_raise_deadline_exceeded(
    channel: grpc.Channel,
) -> None:
    name = _threshold_3("grpc-cut-future")
    ignored_before = get_breaker(name)._ignored
    client = _client(channel, ResilientClientInterceptor(breaker=name, margin=0.01))
    for _ in range(2):
        with within(0.1):
            future = _unary(client, "Sleep").future(b"0.3")
            with pytest.raises(DeadlineExceeded):
                future.result()
            assert isinstance(future.exception(), DeadlineExceeded)
    with within(0.1), pytest.raises(DeadlineExceeded):
        # The stream's first item comes only after the sleep.
        list(client.unary_stream(f"/{SERVICE}/SlowStream")(b""))
    # The verdicts of futures and streams are given on grpc's thread when they end.
    deadline = time.monotonic() + 5
    while get_breaker(name)._ignored - ignored_before < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert get_breaker(name)._ignored - ignored_before == 3
    assert get_breaker(name).state == "closed"


async def test_aio_calls_cut_short_by_tight_budgets_leave_the_breaker_closed(target: str) -> None:
    name = _threshold_3("grpc-aio-cut")
    async with grpc.aio.insecure_channel(
        target, interceptors=[AsyncResilientClientInterceptor(breaker=name, margin=0.01)]
    ) as channel:
        sleep = channel.unary_unary(f"/{SERVICE}/Sleep")
        for _ in range(4):
            with within(0.1), pytest.raises(DeadlineExceeded) as info:
                await sleep(b"0.3", timeout=5.0)
            assert isinstance(info.value, grpc.aio.AioRpcError)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert get_breaker(name).state == "closed"
        with within(0.6):
            assert await sleep(b"0.3") == b"slept"
        for _ in range(3):
            with within(5.0), pytest.raises(grpc.aio.AioRpcError) as own:
                await sleep(b"0.3", timeout=0.1)
            assert not isinstance(own.value, DeadlineExceeded)
        assert get_breaker(name).state == "open"
