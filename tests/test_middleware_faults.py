"""Faults on the middleware's own paths: what admission took is given back all the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings

import resilience_django
from resilience_django.breakers.registry import get_breaker
from resilience_django.runtime import get_runtime

LATE_STREAM = {
    "DEADLINE": {"ROUTES": {"/stream/": "200ms"}},
    "SHEDDING": [{"name": "streams", "path": "/stream/", "max_concurrent": 1, "queue": 0}],
}


@pytest.fixture
def request_finished_fails_once() -> Iterator[None]:
    """A ``request_finished`` receiver that raises the first time (a broken cleanup hook)."""
    calls: list[int] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cleanup failed")

    request_finished.connect(receiver, dispatch_uid="tests.fails_once")
    yield
    request_finished.disconnect(dispatch_uid="tests.fails_once")


@override_settings(RESILIENCE=LATE_STREAM)
@pytest.mark.django_db
@pytest.mark.usefixtures("request_finished_fails_once")
def test_a_late_stream_whose_close_fails_still_gives_its_slot_back() -> None:
    # The late sync view's stream is dropped for a 504; closing it runs request_finished,
    # whose failure must not keep the bulkhead slot taken for good.
    client = Client(raise_request_exception=False)
    client.get("/stream/sync/?wait=0.3")
    shedder = get_runtime().shedder
    assert shedder is not None
    assert shedder.bulkhead("streams").inflight == 0
    assert client.get("/stream/sync/?n=1").status_code == 200


class AsyncGuardedMiddleware:
    """An async-capable middleware below ours calling a dependency through a breaker."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        async with resilience_django.breaker("tenant-service-async"):
            pass
        return await self.get_response(request)


class AsyncDeadlineMiddleware(AsyncGuardedMiddleware):
    """An async-capable middleware below ours whose own work ran out of budget."""

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        raise resilience_django.DeadlineExceeded("the session query ran out of budget")


async def test_open_breaker_in_an_async_middleware_below_ours_is_a_503_not_a_500() -> None:
    # In async mode Django turns the exception into a 500 in a worker thread, where
    # sys.exc_info() is empty: the receiver must still see which exception it was.
    get_breaker("tenant-service-async").force_open()
    inner = f"{__name__}.AsyncGuardedMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, inner]):
        response = await AsyncClient(raise_request_exception=False).get("/async-hello/")
    assert response.status_code == 503


async def test_a_deadline_exceeded_in_an_async_middleware_below_ours_is_a_504_not_a_500() -> None:
    inner = f"{__name__}.AsyncDeadlineMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, inner]):
        response = await AsyncClient(raise_request_exception=False).get("/async-hello/")
    assert response.status_code == 504
