"""A route breaker gives no verdict on a view refused by an inner (dependency) breaker:
one open dependency must not open the route breakers of every route that uses it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings

import resilience_django
from resilience_django.breakers.registry import get_breaker
from tests.utils.waiting import wait_for


def _route(name: str, **policy: object) -> dict[str, object]:
    return {"BREAKERS": {name: {"path": "/", "failure_threshold": 2, **policy}}}


@override_settings(RESILIENCE=_route("route-over-dependency"))
def test_an_open_dependency_does_not_open_the_sync_route_breaker(client: Client) -> None:
    get_breaker("nested-dependency").force_open()
    for _ in range(4):
        response = client.get("/dependency/?name=nested-dependency")
        assert response.status_code == 503
    assert get_breaker("route-over-dependency").state == "closed"
    assert client.get("/hello/").status_code == 200


@override_settings(RESILIENCE=_route("route-over-dependency-async"))
async def test_an_open_dependency_does_not_open_the_async_route_breaker(
    async_client: AsyncClient,
) -> None:
    get_breaker("nested-dependency-async").force_open()
    for _ in range(4):
        response = await async_client.get("/dependency/?name=nested-dependency-async")
        assert response.status_code == 503
    assert get_breaker("route-over-dependency-async").state == "closed"


class GuardedMiddleware:
    """A middleware below ours calling a dependency through a breaker."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with resilience_django.breaker("nested-tenant"):
            pass
        return self.get_response(request)


@override_settings(RESILIENCE=_route("route-over-middleware"))
def test_an_open_breaker_in_a_middleware_below_is_no_verdict_for_the_route() -> None:
    get_breaker("nested-tenant").force_open()
    inner = f"{__name__}.GuardedMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, inner]):
        client = Client(raise_request_exception=False)
        for _ in range(4):
            assert client.get("/hello/").status_code == 503
    assert get_breaker("route-over-middleware").state == "closed"


@override_settings(RESILIENCE=_route("route-half-open", half_open_calls=1, open_for="200ms"))
def test_a_half_open_trial_refused_inside_gives_its_slot_back(client: Client) -> None:
    route = get_breaker("route-half-open")
    get_breaker("nested-dependency-trial").force_open()
    for _ in range(2):
        assert client.get("/fail/sync/").status_code == 500
    wait_for(lambda: route.state == "half_open", what="the route breaker half-open")
    # The trial is refused inside: no verdict, the slot comes back; a real success closes.
    assert client.get("/dependency/?name=nested-dependency-trial").status_code == 503
    assert route.state == "half_open"
    assert client.get("/hello/").status_code == 200
    assert route.state == "closed"
