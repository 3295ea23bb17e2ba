"""Sample rules for the admin, the kind operators add next to the code's settings.

The settings (``demo_project/settings.py``) hold what the code relies on; these
rows are what an operator tunes live: a partner-key limit being tried in
shadow mode, a guard for the internal services, and a deadline for callers
that send none.  ``demo_setup`` loads
them once; rows already there (perhaps edited) are left alone.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from resilience_django.models import BreakerPolicy, LimitRule, RouteDeadline

__all__ = ["LIMIT_RULES", "POLICIES", "ROUTE_DEADLINES", "load"]

LIMIT_RULES: list[dict[str, Any]] = [
    {
        "name": "orders-per-api-key",
        "path": "/api/orders",
        "methods": "POST",
        "key": "header:X-Api-Key",
        "rate": "300/m",
        "burst": 30,
        "algorithm": "gcra",
        "mode": "shadow",
        "notes": "Partner quota, counted but not enforced yet: switch to enforce once "
        "the shadow rejections on the dashboard look right.",
    },
    {
        "name": "downstream-guard",
        "path": "/downstream/",
        "key": "ip",
        "rate": "6000/m",
        "algorithm": "sliding_window",
        "mode": "shadow",
        "notes": "The internal services' guard against a retry storm from a buggy caller.",
    },
]
ROUTE_DEADLINES: list[dict[str, Any]] = [
    {
        "route": "/downstream/",
        "budget": "1s",
        "notes": "Internal services: callers send X-Timeout-Ms (the tighter wins); "
        "this bounds the calls that send none.",
    },
]
# The three dependency breakers are part of what the code relies on, so they
# live in the settings (which win over an admin row of the same name).  An
# operator adds policies here for breakers the settings do not name; the
# registry applies them live.
POLICIES: list[dict[str, Any]] = []


@transaction.atomic
def load() -> list[str]:
    """Create the sample rows that are missing; return what was created."""
    created: list[str] = []
    for model, rows, key in (
        (LimitRule, LIMIT_RULES, "name"),
        (RouteDeadline, ROUTE_DEADLINES, "route"),
        (BreakerPolicy, POLICIES, "name"),
    ):
        for row in rows:
            fields = {k: v for k, v in row.items() if k != key}
            if model.objects.filter(**{key: row[key]}).exists():
                continue
            obj = model(**{key: row[key]}, **fields)
            obj.full_clean()  # the settings' own parsers validate the sample too
            obj.save()
            created.append(f"{model._meta.verbose_name} {row[key]}")
    return created
