"""Views only the admin end-to-end and browser tests serve."""

from __future__ import annotations

import random

from django.http import HttpRequest, JsonResponse

from resilience_django import live
from resilience_django.breakers.api import breaker
from resilience_django.breakers.state import CircuitOpen
from resilience_django.runtime import get_runtime


def failing_call(request: HttpRequest, name: str) -> JsonResponse:
    """A call to a dependency that is down: it fails until the breaker opens, then is refused."""
    try:
        with breaker(name):
            raise ConnectionError("dependency down")
    except CircuitOpen:
        return JsonResponse({"breaker": name, "outcome": "rejected"}, status=503)
    except ConnectionError:
        return JsonResponse({"breaker": name, "outcome": "failed"}, status=502)


def flaky_call(request: HttpRequest, name: str) -> JsonResponse:
    """A call that fails with probability ``?p=`` (for the docs' screenshot traffic)."""
    p = float(request.GET.get("p", "0.5"))
    try:
        with breaker(name):
            if random.random() < p:
                raise ConnectionError("dependency down")
    except CircuitOpen:
        return JsonResponse({"breaker": name, "outcome": "rejected"}, status=503)
    except ConnectionError:
        return JsonResponse({"breaker": name, "outcome": "failed"}, status=502)
    return JsonResponse({"breaker": name, "outcome": "ok"})


def limited(request: HttpRequest) -> JsonResponse:
    """A plain view; the live-reload test limits it through an admin rule."""
    return JsonResponse({"ok": True})


def live_rules(request: HttpRequest) -> JsonResponse:
    """The admin rules this process has in force.

    It asks for the runtime as the middleware does, so a reload that finished is
    built into the runtime first: what this view reports is what requests are decided by.
    """
    get_runtime()
    rules = live.admin_rules()
    return JsonResponse(
        {
            "limit_rules": [r.name for r in rules.limit_rules],
            "breaker_policies": sorted(rules.breaker_policies),
            "route_budgets": [b.label for b in rules.route_budgets],
            "shedding_rules": [r.name for r in rules.shedding_rules],
        }
    )
