"""The order service, the chaos page and the landing page.

The order service reaches its three downstreams over real HTTP through the
package's transports (``clients.py``), exactly as it would reach services on
other machines; the demo serves them itself (``demo_project/downstream.py``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

import resilience_django
from resilience_django.deadline import remaining

from . import chaos, clients

TRIPS = ("LIS-BER", "LIS-MAD", "OPO-LHR", "MAD-CDG", "BER-VIE", "CDG-FCO", "AMS-DUB")
MAX_SEATS = 9


# -- the order service ------------------------------------------------------------


def _parse_order(body: bytes) -> tuple[str, int]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ValueError('the body must be JSON like {"trip": "LIS-BER", "seats": 2}') from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    trip, seats = data.get("trip"), data.get("seats", 1)
    if not isinstance(trip, str) or not 3 <= len(trip) <= 20:
        raise ValueError("trip must be a string such as 'LIS-BER'")
    if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS:
        raise ValueError(f"seats must be an integer from 1 to {MAX_SEATS}")
    return trip.upper(), seats


async def _ask_downstreams(
    trip: str, seats: int, client: str
) -> tuple[dict[str, Any], clients.Price, dict[str, Any]]:
    """All three at once; the first required one to fail cancels the others."""
    try:
        async with asyncio.TaskGroup() as group:
            stock = group.create_task(clients.check_stock(trip, seats))
            price = group.create_task(clients.quote(trip, seats))
            risk = group.create_task(clients.score_risk(trip, seats, client))
    except BaseExceptionGroup as failed:
        # Answer for the dependency that failed (503), or let DeadlineExceeded
        # reach the middleware (504); a TaskGroup wraps them, the middleware
        # only knows them bare.
        leaves = _leaves(failed)
        unavailable = [e for e in leaves if isinstance(e, clients.Unavailable)]
        raise (unavailable or leaves)[0] from None
    return stock.result(), price.result(), risk.result()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


@csrf_exempt  # an API for machines: no session cookie, so nothing for CSRF to protect
@require_POST
async def create_order(request: HttpRequest) -> JsonResponse:
    """``POST /api/orders`` ``{"trip": "LIS-BER", "seats": 2}``: price, stock and risk → 201."""
    try:
        trip, seats = _parse_order(request.body)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    client = request.headers.get("X-Api-Key") or "anonymous"
    try:
        stock, price, risk = await _ask_downstreams(trip, seats, client)
    except clients.Unavailable as exc:
        response = JsonResponse(
            {"error": f"{exc.service} is unavailable; retry later", "reason": exc.reason},
            status=503,
        )
        response["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    if stock.get("seats_left", 0) < seats:
        return JsonResponse({"error": f"{trip} is sold out", "trip": trip}, status=409)
    score = float(risk.get("score", 1.0))
    left = remaining()
    body = {
        "order": uuid.uuid4().hex[:12],
        "status": "review" if score >= 0.9 else "confirmed",
        "trip": trip,
        "seats": seats,
        "price": price.as_json(),
        "seats_left": stock["seats_left"] - seats,
        "risk": score,
        "degraded": ["pricing"] if price.source == "fallback" else [],
        "budget_left_ms": None if left is None else int(left * 1000),
    }
    return JsonResponse(body, status=201)


# -- the chaos page -------------------------------------------------------------


class KnobsForm(forms.Form):
    latency_ms = forms.IntegerField(
        label="added latency (ms)", min_value=0, max_value=int(chaos.MAX_LATENCY * 1000)
    )
    error_percent = forms.IntegerField(label="errors (%)", min_value=0, max_value=100)
    outage = forms.BooleanField(label="outage", required=False)

    def knobs(self) -> chaos.Knobs:
        data = self.cleaned_data
        return chaos.Knobs(
            latency=data["latency_ms"] / 1000.0,
            error_rate=data["error_percent"] / 100.0,
            outage=data["outage"],
        )


PRESETS: dict[str, tuple[str, dict[str, chaos.Knobs]]] = {
    "break-pricing": ("Break pricing", {"pricing": chaos.Knobs(outage=True)}),
    "slow-inventory": ("Slow inventory (1 s)", {"inventory": chaos.Knobs(latency=1.0)}),
    "flaky-risk": ("Flaky risk (40 %)", {"risk": chaos.Knobs(error_rate=0.4)}),
    "calm": ("Calm everything", {}),
}


def _forms(data: Any = None) -> dict[str, KnobsForm]:
    out = {}
    for service in chaos.SERVICES:
        current = chaos.knobs(service)
        initial = {
            "latency_ms": round(current.latency * 1000),
            "error_percent": round(current.error_rate * 100),
            "outage": current.outage,
        }
        out[service] = KnobsForm(data, prefix=service, initial=initial)
    return out


@staff_member_required
@require_http_methods(["GET", "POST"])
# Knobs are cheap to turn, but not to be turned in a loop (looking is free).
@resilience_django.limit("30/m", key="user", methods=["POST"], name="chaos-changes")
def chaos_page(request: HttpRequest) -> HttpResponse:
    """``/chaos/``: staff turn the downstreams' knobs (CSRF-protected, like any form)."""
    if request.method == "POST":
        preset = request.POST.get("preset")
        if preset in PRESETS:
            label, settings = PRESETS[preset]
            for service in chaos.SERVICES:
                chaos.set_knobs(service, settings.get(service, chaos.Knobs()))
            messages.success(request, f"{label}: done.")
            return HttpResponseRedirect(reverse("chaos"))
        bound = _forms(request.POST)
        if all(form.is_valid() for form in bound.values()):
            for service, form in bound.items():
                chaos.set_knobs(service, form.knobs())
            messages.success(request, "Knobs saved; every worker uses them from now on.")
            return HttpResponseRedirect(reverse("chaos"))
        forms_by_service = bound
    else:
        forms_by_service = _forms()
    context = {
        "forms": forms_by_service.items(),
        "presets": [(key, label) for key, (label, _) in PRESETS.items()],
        "dashboard": reverse("admin:resilience_django_breakerdashboard_changelist"),
    }
    return render(request, "orders/chaos.html", context)


def index(request: HttpRequest) -> HttpResponse:
    """The landing page: what to try, with links."""
    knobs = {service: chaos.knobs(service) for service in chaos.SERVICES}
    context = {
        "dashboard": reverse("admin:resilience_django_breakerdashboard_changelist"),
        "trips": TRIPS,
        "chaos": [(service, k) for service, k in knobs.items() if not k.calm],
    }
    return render(request, "orders/index.html", context)
