"""``streaming.guard_stream``: a streamed body keeps its slot and stops at the deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from django.http import StreamingHttpResponse

from resilience_django import deadline as deadline_api
from resilience_django.deadline import Deadline
from resilience_django.shedding.bulkhead import Bulkhead
from resilience_django.streaming import guard_stream


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bulkhead() -> Bulkhead:
    return Bulkhead("streams", 1, report_metrics=False)


def test_a_sync_body_holds_the_slot_until_it_ends() -> None:
    bulkhead = _bulkhead()
    response = StreamingHttpResponse(iter([b"a", b"b"]))
    guard_stream(response, permit=bulkhead.acquire_sync(0), deadline=None)
    body = iter(response)
    assert next(body) == b"a"
    assert bulkhead.inflight == 1
    assert list(body) == [b"b"]
    assert bulkhead.inflight == 0


@pytest.mark.django_db  # response.close() sends request_finished, which closes connections
def test_closing_a_body_nobody_read_gives_the_slot_back() -> None:
    # A HEAD request, or a client gone before the first chunk: Django still closes the response.
    bulkhead = _bulkhead()
    response = StreamingHttpResponse(iter([b"a"]))
    guard_stream(response, permit=bulkhead.acquire_sync(0), deadline=None)
    response.close()
    assert bulkhead.inflight == 0


def test_a_failing_sync_body_gives_the_slot_back() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise RuntimeError("broken body")

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=bulkhead.acquire_sync(0), deadline=None)
    with pytest.raises(RuntimeError):
        list(response)
    assert bulkhead.inflight == 0


def test_a_sync_body_stops_at_the_deadline_and_drops_a_chunk_made_too_late() -> None:
    clock = Clock()
    deadline = Deadline(1.0, route="/cut", clock=clock)
    seen: list[float | None] = []

    def chunks() -> Iterator[bytes]:
        seen.append(deadline_api.remaining())
        yield b"in time"
        clock.now += 2  # this chunk blocks past the deadline
        yield b"too late"
        yield b"never asked for"

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=bulkhead.acquire_sync(0), deadline=deadline)
    assert list(response) == [b"in time"]
    assert bulkhead.inflight == 0
    assert seen == [1.0]  # the body runs under the request's budget


def test_an_exempt_sync_body_runs_without_a_deadline() -> None:
    seen: list[float | None] = []

    def chunks() -> Iterator[bytes]:
        seen.append(deadline_api.remaining())
        yield b"a"

    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=_bulkhead().acquire_sync(0), deadline=None)
    assert list(response) == [b"a"]
    assert seen == [None]


async def _collect(response: StreamingHttpResponse) -> list[bytes]:
    return [chunk async for chunk in response]


async def test_an_async_body_holds_the_slot_until_it_ends() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=await bulkhead.acquire_async(0), deadline=None)
    assert response.is_async
    assert await _collect(response) == [b"a", b"b"]
    assert bulkhead.inflight == 0


async def test_an_async_chunk_that_never_comes_is_cut_at_the_deadline() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"in time"
        await asyncio.sleep(30)
        yield b"never"

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    # 1 s: the first chunk is in time even if a loaded machine stalls the test.
    deadline = Deadline(1.0, route="/cut")
    guard_stream(response, permit=await bulkhead.acquire_async(0), deadline=deadline)
    assert await asyncio.wait_for(_collect(response), timeout=5) == [b"in time"]
    assert bulkhead.inflight == 0


async def test_an_async_body_that_times_out_on_its_own_is_not_cut_by_us() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        raise TimeoutError("the body's own timeout")
        yield b""  # pragma: no cover

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=await bulkhead.acquire_async(0), deadline=Deadline(30.0))
    with pytest.raises(TimeoutError, match="own timeout"):
        await _collect(response)
    assert bulkhead.inflight == 0


async def test_an_async_body_cancelled_because_the_client_left_gives_the_slot_back() -> None:
    started = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        started.set()
        await asyncio.sleep(30)
        yield b"never"

    bulkhead = _bulkhead()
    response = StreamingHttpResponse(chunks())
    guard_stream(response, permit=await bulkhead.acquire_async(0), deadline=None)
    reader = asyncio.ensure_future(_collect(response))
    await started.wait()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert bulkhead.inflight == 0
