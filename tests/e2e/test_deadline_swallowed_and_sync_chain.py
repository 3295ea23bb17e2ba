"""Deadlines over a real uvicorn where the view or the middleware chain gets in the way:
an async view that catches the deadline's cancellation, and a sync-only middleware below
``ResilienceMiddleware`` (Django then runs it in sync mode, where it cannot cancel).

This module is also the server's ASGI application and URLconf (``application``,
``fastpath``, ``enforcing``, ``sync_middleware``; ``urlpatterns``), so its views live
beside the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e

CONFIG = {"DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/slow/": "300ms"}}}


async def swallows_and_answers(request: HttpRequest) -> HttpResponse:
    try:
        await asyncio.sleep(3)
    except asyncio.CancelledError:
        return HttpResponse("swallowed")
    return HttpResponse("finished")


async def swallows_and_goes_on(request: HttpRequest) -> HttpResponse:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3)
    await asyncio.sleep(1.5)
    return HttpResponse("went on")


async def async_slow(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(2)
    return HttpResponse("finished")


class SyncOnlyMiddleware:
    """Like many third-party middlewares: sync only.  Below it Django runs the whole
    chain in sync mode, ``ResilienceMiddleware`` included."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)


urlpatterns = [
    path("ready/", lambda request: HttpResponse("ok")),
    path("slow/swallows-and-answers/", swallows_and_answers),
    path("slow/swallows-and-goes-on/", swallows_and_goes_on),
    path("slow/async/", async_slow),
]


def __getattr__(name: str) -> Any:
    # Built only in the server (uvicorn asks for it), not when pytest imports the tests.
    if name not in ("application", "fastpath", "enforcing", "sync_middleware"):
        raise AttributeError(name)
    import django
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    from resilience_django.asgi import ResilienceASGIMiddleware

    django.setup()
    settings.ROOT_URLCONF = __name__
    if name == "sync_middleware":
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.SyncOnlyMiddleware"]
    app = get_asgi_application()
    if name == "application":
        return app
    return ResilienceASGIMiddleware(app, enforce_deadline=True if name == "enforcing" else None)


def _timed_get(server: Server, path: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.get(server.url + path, timeout=10)
    return response, time.monotonic() - start


@pytest.fixture(scope="module", params=["application", "fastpath", "enforcing"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=f"{__name__}:{request.param}") as srv:
        srv.app_name = request.param  # type: ignore[attr-defined]
        yield srv


def test_an_async_view_that_answers_after_catching_the_cancellation_gets_504_on_time(
    server: Server,
) -> None:
    response, elapsed = _timed_get(server, "/slow/swallows-and-answers/")
    assert response.status_code == 504
    assert elapsed < 1.2  # a 300 ms budget; the view would sleep 3 s


def test_an_async_view_that_goes_on_after_catching_the_cancellation_gets_504(
    server: Server,
) -> None:
    response, elapsed = _timed_get(server, "/slow/swallows-and-goes-on/")
    assert response.status_code == 504
    if server.app_name == "enforcing":  # type: ignore[attr-defined]
        # The wrapper runs the app as a task of its own and stops waiting for it.
        assert elapsed < 1.2
    else:
        # The middleware runs in the view's task: it answers when the view returns,
        # late, but with the deadline's 504, not the view's 200 (docs/deadlines.md).
        assert elapsed >= 1.5


@pytest.fixture(scope="module")
def sync_chain() -> Iterator[Server]:
    with uvicorn_server(CONFIG, app=f"{__name__}:sync_middleware") as srv:
        yield srv


def test_behind_the_wrapper_an_async_view_below_a_sync_only_middleware_gets_504_on_time(
    sync_chain: Server,
) -> None:
    # Django runs ResilienceMiddleware in sync mode here; the wrapper notices and
    # enforces the deadline itself.
    response, elapsed = _timed_get(sync_chain, "/slow/async/")
    assert response.status_code == 504
    assert elapsed < 1.2  # a 300 ms budget; the view takes 2 s
