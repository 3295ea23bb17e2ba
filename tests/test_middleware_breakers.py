"""Route breakers in the middleware, and dependency breakers escaping views; sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings

import resilience_django
from resilience_django.breakers.registry import get_breaker


def _route_breaker(name: str, path: str) -> dict[str, object]:
    return {
        "BREAKERS": {
            name: {
                "path": path,
                "failure_threshold": 2,
                "open_for": "300ms",
                "half_open_calls": 1,
                "close_ratio": 1.0,
            }
        }
    }


@override_settings(RESILIENCE=_route_breaker("route-sync", "/fail/sync/"))
def test_sync_failing_route_is_short_circuited_with_503_without_running_the_view(
    client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    assert client.get(f"/fail/sync/?marker={marker}").status_code == 500
    assert client.get(f"/fail/sync/?marker={marker}").status_code == 500
    assert marker.read_text().count("ran") == 2
    response = client.get(f"/fail/sync/?marker={marker}")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert marker.read_text().count("ran") == 2  # the view did not run
    assert get_breaker("route-sync").state == "open"


@override_settings(RESILIENCE=_route_breaker("route-async", "/fail/async/"))
async def test_async_failing_route_is_short_circuited_then_recovers_through_half_open(
    async_client: AsyncClient,
) -> None:
    for _ in range(2):
        assert (await async_client.get("/fail/async/")).status_code == 500
    assert (await async_client.get("/fail/async/?status=200")).status_code == 503
    time.sleep(0.35)
    # Half-open: one trial goes through, succeeds, and closes the breaker.
    assert (await async_client.get("/fail/async/?status=200")).status_code == 200
    assert get_breaker("route-async").state == "closed"
    assert (await async_client.get("/fail/async/?status=200")).status_code == 200


@override_settings(RESILIENCE=_route_breaker("route-ok", "/fail/sync/"))
def test_successful_route_keeps_its_breaker_closed(client: Client) -> None:
    for _ in range(5):
        assert client.get("/fail/sync/?status=200").status_code == 200
    assert client.get("/fail/sync/?status=404").status_code == 404
    assert get_breaker("route-ok").state == "closed"


@override_settings(
    RESILIENCE={
        "DEADLINE": {"ROUTES": {"/slow/async/": "100ms"}},
        "BREAKERS": {"route-timeouts": {"path": "/slow/async/", "failure_threshold": 2}},
    }
)
async def test_deadline_504s_count_as_route_failures(async_client: AsyncClient) -> None:
    for _ in range(2):
        assert (await async_client.get("/slow/async/?s=1")).status_code == 504
    assert (await async_client.get("/slow/async/?s=0")).status_code == 503


def test_open_dependency_breaker_escaping_a_sync_view_is_a_503_not_a_500(client: Client) -> None:
    get_breaker("forced-dependency").force_open()
    response = client.get("/dependency/?name=forced-dependency")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1


async def test_breaker_api_is_exported_from_the_package() -> None:
    assert resilience_django.CircuitOpen.__name__ == "CircuitOpen"
    assert callable(resilience_django.breaker)


@override_settings(
    RESILIENCE={"BREAKERS": {"route-callers": {"path": "/slow/async/", "failure_threshold": 2}}}
)
async def test_callers_tight_budget_504s_do_not_open_the_route_for_everyone(
    async_client: AsyncClient,
) -> None:
    # The route has the default 30 s budget; these callers give it 20 ms.
    for _ in range(2):
        response = await async_client.get("/slow/async/?s=1", headers={"X-Timeout-Ms": "20"})
        assert response.status_code == 504
    assert (await async_client.get("/slow/async/?s=0")).status_code == 200
    assert get_breaker("route-callers").state == "closed"


class GuardedMiddleware:
    """A middleware below ours that calls a dependency through a breaker (a tenant lookup)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with resilience_django.breaker("tenant-service"):
            pass
        return self.get_response(request)


def test_open_breaker_in_a_middleware_below_ours_is_a_503_not_a_500() -> None:
    get_breaker("tenant-service").force_open()
    inner = f"{__name__}.GuardedMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, inner]):
        response = Client(raise_request_exception=False).get("/fail/sync/?status=200")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1


class DeadlineMiddleware:
    """A middleware below ours whose own work (a session query, say) ran out of budget."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raise resilience_django.DeadlineExceeded("the session query ran out of budget")


def test_a_deadline_exceeded_in_a_middleware_below_ours_is_a_504_not_a_500() -> None:
    inner = f"{__name__}.DeadlineMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, inner]):
        response = Client(raise_request_exception=False).get("/fail/sync/?status=200")
    assert response.status_code == 504


@override_settings(RESILIENCE=_route_breaker("route-4xx", "/fail/async/"))
async def test_a_client_error_is_no_verdict_so_it_cannot_close_a_half_open_route(
    async_client: AsyncClient,
) -> None:
    for _ in range(2):
        assert (await async_client.get("/fail/async/")).status_code == 500
    assert get_breaker("route-4xx").state == "open"
    opened = time.monotonic()
    while time.monotonic() - opened < 0.35:  # open_for: 300 ms
        await asyncio.sleep(0.05)
    # The half-open trial is a 404 (any client can send one): no verdict, so the breaker
    # stays half-open and the next trial, a real success, is the one that closes it.
    assert (await async_client.get("/fail/async/?status=404")).status_code == 404
    assert get_breaker("route-4xx").state == "half_open"
    assert (await async_client.get("/fail/async/?status=200")).status_code == 200
    assert get_breaker("route-4xx").state == "closed"
