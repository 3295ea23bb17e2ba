"""An exempt route's streamed body sees no deadline behind ``ResilienceASGIMiddleware``
(docs/deadlines.md, "Streamed responses"), with and without ``ResilienceMiddleware``:
Django's own ASGI handler, driven with ASGI messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from resilience_django.asgi import ResilienceASGIMiddleware
from resilience_django.deadline import remaining
from tests.settings import MIDDLEWARE as WITH_MIDDLEWARE


def sync_events(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        time.sleep(0.3)  # past the 100 ms budget
        yield repr(remaining()).encode()

    return StreamingHttpResponse(chunks())


async def async_events(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.3)  # past the 100 ms budget
        yield repr(remaining()).encode()

    return StreamingHttpResponse(chunks())


urlpatterns = [path("events/sync/", sync_events), path("events/async/", async_events)]

EXEMPT = {"DEADLINE": {"DEFAULT": "100ms", "EXEMPT_STREAMS": ["/events/"]}}


async def _body(path: str) -> bytes:
    scope = {
        "type": "http", "method": "GET", "path": path, "root_path": "", "headers": [],
        "query_string": b"", "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    disconnected = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            disconnected.set()

    app = ResilienceASGIMiddleware(ASGIHandler())
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert sent[0]["status"] == 200
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


# Django warns that it reads a sync body whole under ASGI: that is the case covered.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous")
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    "middleware",
    [
        pytest.param([], id="wrapper-alone"),
        pytest.param(WITH_MIDDLEWARE, id="middleware"),
    ],
)
async def test_an_exempt_body_sees_no_deadline(kind: str, middleware: list[str]) -> None:
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=middleware, RESILIENCE=EXEMPT):
        assert await _body(f"/events/{kind}/") == b"None"
