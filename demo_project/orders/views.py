"""The order service: prices, checks inventory and scores risk over HTTP.

The downstreams are served by the demo itself (``/downstream/<service>``) so
one process shows everything; their chaos knobs live in ``chaos.py``.
"""

from __future__ import annotations

import asyncio
import random

import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from resilience_django.deadline import remaining
from resilience_django.integrations.httpx import AsyncResilientTransport

from . import chaos

SERVICES = ("pricing", "inventory", "risk")
_client: httpx.AsyncClient | None = None


def _http() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(transport=AsyncResilientTransport(), timeout=5.0)
    return _client


async def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "<h1>Demo order service</h1>"
        "<p>POST <code>/api/orders</code> to place an order; "
        "<a href='/admin/'>admin</a> for rules and the breaker dashboard.</p>"
    )


@csrf_exempt
async def create_order(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "POST an order"}, status=405)
    base = settings.DOWNSTREAM_URL
    answers = await asyncio.gather(*(_http().get(f"{base}/{name}") for name in SERVICES))
    parts = {name: answer.json() for name, answer in zip(SERVICES, answers, strict=True)}
    return JsonResponse({"order": "accepted", "budget_left": remaining(), **parts}, status=201)


async def downstream(request: HttpRequest, service: str) -> JsonResponse:
    knobs = chaos.knobs(service)
    if knobs.outage:
        return JsonResponse({"error": f"{service} is down"}, status=503)
    if knobs.latency:
        await asyncio.sleep(knobs.latency)
    if random.random() < knobs.error_rate:
        return JsonResponse({"error": f"{service} failed"}, status=500)
    value = {"pricing": {"price": 42.0}, "inventory": {"in_stock": True}, "risk": {"score": 0.1}}
    return JsonResponse(value.get(service, {}))
