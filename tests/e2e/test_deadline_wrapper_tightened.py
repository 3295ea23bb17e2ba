"""``ResilienceASGIMiddleware`` alone (and with ``ResilienceMiddleware``), over a real uvicorn,
with a budget tightened after arrival by ``@deadline`` on the view: the 504 comes at the
tightened deadline.

This module is also the server's ASGI application and URLconf (``application``,
``urlpatterns``), so its views live beside the tests that call them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience_django import deadline
from tests.e2e.server import Server, uvicorn_server

pytestmark = pytest.mark.e2e


@deadline("300ms")
async def decorated_async(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(3)
    return HttpResponse("finished")


@deadline("300ms")
def decorated_sync(request: HttpRequest) -> HttpResponse:
    time.sleep(3)  # no query, no call: nothing stops it, but the client has its 504
    return HttpResponse("finished")


urlpatterns = [
    path("ready/", lambda request: HttpResponse("ok")),
    path("async/", decorated_async),
    path("sync/", decorated_sync),
]


def __getattr__(name: str) -> Any:
    # Built only in the server (uvicorn asks for it), not when pytest imports the tests.
    if name != "application":
        raise AttributeError(name)
    import django
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    from resilience_django.asgi import ResilienceASGIMiddleware

    django.setup()
    settings.ROOT_URLCONF = __name__
    return ResilienceASGIMiddleware(get_asgi_application())


@pytest.fixture(
    scope="module",
    # The wrapper alone; and, for comparison, with ResilienceMiddleware behind it.
    params=["tests.e2e.wrapper_only_settings", "tests.e2e.settings"],
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    env = {"DJANGO_SETTINGS_MODULE": request.param}
    app = f"{__name__}:application"
    with uvicorn_server({"DEADLINE": {"DEFAULT": "30s"}}, app=app, extra_env=env) as srv:
        yield srv


@pytest.mark.parametrize("view", ["/async/", "/sync/"])
def test_a_view_past_its_decorator_budget_gets_504_at_that_deadline(
    server: Server, view: str
) -> None:
    start = time.monotonic()
    response = httpx.get(server.url + view, timeout=10)
    elapsed = time.monotonic() - start
    assert response.status_code == 504, response.text[:500]
    assert 0.29 <= elapsed < 2.0  # the view would take 3 s, the route allows 30 s
