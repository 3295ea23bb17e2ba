"""The breaker dashboard's JSON endpoint: GET state, POST operator actions (docs/admin.md);
``admin.py`` wraps it in ``AdminSite.admin_view`` (login, CSRF)."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from django.http import HttpRequest, HttpResponse, JsonResponse

from .state import snapshot

__all__ = ["api_view", "can_operate", "can_view"]

logger = logging.getLogger("resilience_django.admin")
OPERATE = "resilience_django.operate_breakers"
# "viewing: staff with the app's view permissions" (DESIGN.md): any of these will do.
_VIEW = (
    *(f"resilience_django.view_{model}" for model in
      ("breakerdashboard", "breakerpolicy", "limitrule", "routedeadline", "sheddingrule")),
    OPERATE,
)  # fmt: skip


def can_view(user: Any) -> bool:
    """Staff who may see the dashboard."""
    return bool(user.is_active and user.is_staff and any(user.has_perm(p) for p in _VIEW))


def can_operate(user: Any) -> bool:
    """Staff who may force-open, force-close, reset and disable breakers."""
    return bool(user.is_active and user.is_staff and user.has_perm(OPERATE))


ACTION_LABELS = {
    "force_open": "Forced open",
    "force_close": "Forced closed",
    "reset": "Reset",
    "disable": "Disabled",
}
# Spring actuator's updateState values, and our own action names.
ACTION_ALIASES = {
    "FORCE_OPEN": "force_open", "CLOSE": "force_close", "CLOSED": "force_close",
    "FORCE_CLOSE": "force_close", "RESET": "reset", "DISABLE": "disable",
    **{action: action for action in ACTION_LABELS},
}  # fmt: skip


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _requested_action(request: HttpRequest) -> str | None:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # a deeply nested body exhausts the stack
            return None
        raw = body.get("updateState", body.get("action")) if isinstance(body, dict) else None
    else:
        raw = request.POST.get("updateState", request.POST.get("action"))
    return ACTION_ALIASES.get(raw) if isinstance(raw, str) else None


def api_view(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """GET: state (all breakers, or one); POST <name>: an operator action."""
    if not can_view(request.user):
        return _error(403, "You may not view the breaker dashboard.")
    if request.method == "GET":
        state = snapshot(can_operate=can_operate(request.user))
        if name is None:
            return JsonResponse(state)
        for breaker in state["breakers"]:
            if breaker["name"] == name:
                return JsonResponse(breaker)
        return _error(404, f"No breaker {name!r} in the fleet.")
    if request.method != "POST" or name is None:
        refused = _error(405, "GET for state; POST to <breaker>/ for an action.")
        refused["Allow"] = "GET" if name is None else "GET, POST"  # a 405 must say (RFC 9110)
        return refused
    if not can_operate(request.user):
        return _error(403, f"Operating breakers needs the {OPERATE} permission.")
    action = _requested_action(request)
    if action is None:
        return _error(400, f"Send updateState: one of {', '.join(sorted(ACTION_ALIASES)[:5])}.")
    from ..breakers.registry import all_breakers, registry
    from ..conf import get_settings
    from ..fleet import fleet_snapshot, send_command
    from ..live import admin_rules

    try:
        known = (
            any(str(row.get("name")) == name for row in fleet_snapshot())
            or name in get_settings().breaker_names
            or name in admin_rules().breaker_policies
            or name in registry
        )
        fleet_error = None
    except Exception:
        # The shared store is down: act on this process's breakers, and say so.
        logger.exception("breaker dashboard: fleet store unreachable")
        known = any(b.name == name for b in all_breakers())
        fleet_error = "The fleet store is unreachable: applied in this process only."
    if not known:
        return _error(404, f"No breaker {name!r} in the fleet.")
    version = send_command(name, action)
    _log(request, name, action, version)
    body: dict[str, Any] = {"name": name, "action": action, "version": version}
    if fleet_error is not None or version == 0:
        body["fleet_error"] = fleet_error or "Not sent to the fleet: applied in this process only."
    return JsonResponse(body)


def _log(request: HttpRequest, name: str, action: str, version: int) -> None:
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    from ..models import BreakerDashboard

    LogEntry.objects.create(
        user_id=cast(Any, request.user.pk),
        content_type=ContentType.objects.get_for_model(BreakerDashboard),
        object_id=name,
        object_repr=f"breaker {name}"[:200],
        action_flag=CHANGE,
        change_message=f"{ACTION_LABELS[action]} breaker '{name}' in every process "
        f"(command version {version}).",
    )
