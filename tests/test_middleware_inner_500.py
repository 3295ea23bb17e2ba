"""A 500 made below ``ResilienceMiddleware`` after a view's open breaker was already answered
with a 503 stays a 500: the breaker's exception is not blamed for another middleware's bug."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.test import AsyncClient, Client, override_settings

from resilience_django.breakers.registry import get_breaker


class BrokenOnServiceUnavailable:
    """A middleware between ours and the view that crashes on the 503 it is handed (or, with
    ``?returns=1``, answers a 500 of its own instead)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 503 and request.GET.get("returns"):
            return HttpResponseServerError("a 500 of its own")
        if response.status_code == 503:
            raise ValueError("a bug in a middleware below ours")
        return response


_BROKEN = [*settings.MIDDLEWARE, f"{__name__}.BrokenOnServiceUnavailable"]
_ROUTE = {"BREAKERS": {"route-over-broken": {"path": "/", "failure_threshold": 2}}}


@override_settings(MIDDLEWARE=_BROKEN, RESILIENCE=_ROUTE)
def test_a_middleware_crash_below_ours_after_a_views_open_breaker_stays_a_500() -> None:
    get_breaker("inner-500-dependency").force_open()
    client = Client(raise_request_exception=False)
    for _ in range(2):
        assert client.get("/dependency/?name=inner-500-dependency").status_code == 500
    # The route's own verdict was given on the view: refused inside, none.
    assert get_breaker("route-over-broken").state == "closed"


@override_settings(MIDDLEWARE=_BROKEN)
def test_a_500_a_middleware_below_ours_returns_instead_of_the_503_stays_a_500() -> None:
    get_breaker("inner-500-returned").force_open()
    client = Client(raise_request_exception=False)
    response = client.get("/dependency/?name=inner-500-returned&returns=1")
    assert response.status_code == 500


@override_settings(MIDDLEWARE=_BROKEN)
async def test_a_middleware_crash_below_ours_stays_a_500_in_async_mode() -> None:
    get_breaker("inner-500-dependency-async").force_open()
    client = AsyncClient(raise_request_exception=False)
    response = await client.get("/dependency/?name=inner-500-dependency-async")
    assert response.status_code == 500
