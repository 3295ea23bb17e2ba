"""Streamed responses through the middleware: the slot and the deadline cover the body.

Paired sync (``client``) and async (``async_client``) tests; the e2e tests in
``tests/e2e/test_streaming.py`` drive the same through a real uvicorn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from django.test import AsyncClient, Client, override_settings

from resilience_django.runtime import get_runtime

SHED = {"SHEDDING": [{"name": "streams", "path": "/stream/", "max_concurrent": 1, "queue": 0}]}
CUT = {"DEADLINE": {"ROUTES": {"/stream/": "200ms"}}}
# Long enough for a first chunk on a loaded machine, and well short of the 3 s body.
CUT_1S = {"DEADLINE": {"ROUTES": {"/stream/": "1s"}}}
EXEMPT = {"DEADLINE": {"ROUTES": {"/stream/": "200ms"}, "EXEMPT_STREAMS": ["stream-async"]}}


def _inflight(rule: str) -> int:
    shedder = get_runtime().shedder
    assert shedder is not None
    return shedder.bulkhead(rule).inflight


@override_settings(RESILIENCE=SHED)
def test_sync_streamed_response_holds_its_slot_until_its_body_is_read(client: Client) -> None:
    first = client.get("/stream/sync/?n=3")
    assert first.status_code == 200
    assert client.get("/stream/sync/").status_code == 503
    assert b"".join(first.streaming_content) == b"0,1,2,"  # type: ignore[attr-defined]
    assert _inflight("streams") == 0
    assert client.get("/stream/sync/").status_code == 200


@override_settings(RESILIENCE=SHED)
async def test_async_streamed_response_holds_its_slot_until_its_body_is_read(
    async_client: AsyncClient,
) -> None:
    first = await async_client.get("/stream/async/?n=3")
    assert first.status_code == 200
    assert (await async_client.get("/stream/async/")).status_code == 503
    assert b"".join([c async for c in first.streaming_content]) == b"0,1,2,"  # type: ignore[attr-defined]
    assert _inflight("streams") == 0


@override_settings(RESILIENCE={"SHEDDING": [{**SHED["SHEDDING"][0], "exempt_streams": True}]})
def test_sync_exempt_rule_gives_the_slot_back_when_the_view_returns(client: Client) -> None:
    first = client.get("/stream/sync/?n=3")
    assert _inflight("streams") == 0
    assert client.get("/stream/sync/").status_code == 200
    assert b"".join(first.streaming_content) == b"0,1,2,"  # type: ignore[attr-defined]


@override_settings(RESILIENCE=CUT_1S)
def test_sync_streamed_body_stops_at_the_deadline(client: Client) -> None:
    response = client.get("/stream/sync/?n=60&step=0.05")
    start = time.monotonic()
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert time.monotonic() - start < 2.0
    assert 0 < len(body.split(b",")) - 1 < 60


@override_settings(RESILIENCE=CUT_1S)
async def test_async_streamed_body_stops_at_the_deadline(async_client: AsyncClient) -> None:
    response = await async_client.get("/stream/async/?n=60&step=0.05")
    start = time.monotonic()
    body = b"".join([c async for c in response.streaming_content])  # type: ignore[attr-defined]
    assert time.monotonic() - start < 2.0
    assert 0 < len(body.split(b",")) - 1 < 60


@override_settings(RESILIENCE=EXEMPT)
async def test_async_stream_of_an_exempt_url_name_runs_past_the_deadline(
    async_client: AsyncClient,
) -> None:
    response = await async_client.get("/stream/async/?n=6&step=0.05")
    body = b"".join([c async for c in response.streaming_content])  # type: ignore[attr-defined]
    assert body == b"0,1,2,3,4,5,"
    # The other view under the same route budget is not exempt: cut.
    response = await async_client.get("/stream/sync/?n=6&step=0.05")
    assert b"".join(response.streaming_content) != b"0,1,2,3,4,5,"  # type: ignore[attr-defined]


@override_settings(RESILIENCE=CUT)
@pytest.mark.django_db  # the dropped stream is closed: request_finished closes connections
def test_sync_view_streaming_after_its_deadline_gets_504_not_an_empty_200(client: Client) -> None:
    # Under WSGI nothing stops a slow sync view; its stream could not send a byte in time.
    response = client.get("/stream/sync/?wait=0.3")
    assert response.status_code == 504


async def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.02)


@override_settings(
    RESILIENCE={
        "DEADLINE": {"ROUTES": {"/sleep/": "100ms"}},
        "SHEDDING": [{"name": "sleep", "path": "/sleep/", "max_concurrent": 1, "queue": 0}],
    }
)
async def test_async_abandoned_sync_view_keeps_its_slot_until_its_thread_ends(
    async_client: AsyncClient,
) -> None:
    start = time.monotonic()
    response = await async_client.get("/sleep/sync/?s=3")
    assert response.status_code == 504
    assert time.monotonic() - start < 1.5  # at the deadline, not after the 3 s view
    # The view's thread sleeps on, and its slot stays taken until it ends.  (The
    # test client runs every request's sync code on one thread, so a second
    # request would wait for it there: the e2e test shows the shedding.)
    assert _inflight("sleep") == 1
    await _wait_for(lambda: _inflight("sleep") == 0)
    assert time.monotonic() - start >= 2.95
    assert (await async_client.get("/sleep/sync/?s=0")).status_code == 200
