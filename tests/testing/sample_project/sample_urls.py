from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

import resilience_django


def list_price() -> dict[str, object]:
    return {"amount": 100, "source": "fallback"}


@resilience_django.breaker("pricing", fallback=list_price)
def live_price() -> dict[str, object]:
    return {"amount": 90, "source": "pricing"}


def orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse(live_price())


urlpatterns = [path("orders/", orders)]
