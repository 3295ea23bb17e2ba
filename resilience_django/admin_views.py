"""The breaker dashboard: an admin page, and its JSON endpoint (GET state, POST actions).

The endpoint mirrors Spring Boot actuator's ``circuitbreakers``:

``GET  <admin>/resilience_django/breakerdashboard/api/``
    Every breaker across the fleet, limiter health, top rejecting rules,
    deadline misses (see ``docs/admin.md`` for the fields).
``GET  .../api/<breaker>/``
    One breaker.
``POST .../api/<breaker>/`` with ``{"updateState": "FORCE_OPEN"}``
    (or ``CLOSE``/``FORCE_CLOSE``, ``RESET``, ``DISABLE``; ``{"action": "force_open"}``
    works too).  Needs ``resilience_django.operate_breakers`` and a CSRF token;
    each action is written to the admin history (``LogEntry``).

Counts of rejections and deadline misses come from the Prometheus counters of
the process serving the dashboard (with prometheus-client's multiprocess mode,
of every process writing to its directory).  "Last minute" is the growth since
the oldest sample of the last minute; samples are taken when it is polled.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, cast

from django.http import HttpRequest, HttpResponse, JsonResponse

from .clock import Clock, monotonic

__all__ = [
    "ACTION_ALIASES",
    "CounterHistory",
    "RateHistory",
    "aggregate_breakers",
    "api_view",
    "can_operate",
    "can_view",
    "counter_totals",
    "dashboard_state",
]

# Worst first: a breaker is shown in the worst state any process has it in.
_SEVERITY = ("forced_open", "open", "half_open", "metrics_only", "disabled", "closed")


_REFUSING = frozenset({"forced_open", "open"})


def _severity(state: str) -> int:
    return _SEVERITY.index(state) if state in _SEVERITY else 0


def aggregate_breakers(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group per-process snapshot rows by breaker into one fleet-wide summary each."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get("name")), []).append(row)
    out = []
    for name in sorted(grouped):
        procs = grouped[name]
        calls = sum(int(p.get("calls") or 0) for p in procs)
        failures = sum(int(p.get("failures") or 0) for p in procs)
        slow = sum(int(p.get("slow") or 0) for p in procs)
        transitions = [p["last_transition"] for p in procs if p.get("last_transition")]
        last = max(transitions, key=lambda t: t.get("at") or 0.0) if transitions else None
        states = [str(p.get("state")) for p in procs]
        worst = min(states, key=_severity)
        rate = failures / calls if calls else 0.0
        out.append(
            {
                "name": name,
                "state": worst,
                "states": {s: states.count(s) for s in sorted(set(states))},
                "calls": calls,
                "failures": failures,
                "failure_rate": round(rate, 4),
                # What the sparkline draws: an open breaker refuses every call, and
                # its window is not measured, so it counts as 100% rather than 0%.
                "error_rate": 1.0 if worst in _REFUSING else round(rate, 4),
                "slow_rate": round(slow / calls, 4) if calls else 0.0,
                "ewma": max(float(p.get("ewma") or 0.0) for p in procs),
                "rejected": sum(int(p.get("rejected") or 0) for p in procs),
                "retry_after": max(float(p.get("retry_after") or 0.0) for p in procs),
                "last_transition": last,
                "processes": [
                    {
                        "host": p.get("host"),
                        "pid": p.get("pid"),
                        "state": p.get("state"),
                        "calls": p.get("calls"),
                        "failure_rate": p.get("failure_rate"),
                        "slow_rate": p.get("slow_rate"),
                        "ewma": p.get("ewma"),
                        "rejected": p.get("rejected"),
                        "retry_after": p.get("retry_after"),
                        "reported": p.get("time"),
                    }
                    for p in procs
                ],
            }
        )
    return out


def counter_totals(metric: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """Current ``*_total`` values of one counter in the default registry, by label values."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:  # pragma: no cover - prometheus-client is a dependency
        return {}
    totals: dict[tuple[str, ...], float] = {}
    for family in REGISTRY.collect():
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name == metric + "_total":
                key = tuple(sample.labels.get(label, "") for label in labels)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


class CounterHistory:
    """A ring of counter samples, to tell how much a counter grew in the last minute."""

    def __init__(self, *, window: float = 60.0, every: float = 2.0, clock: Clock = monotonic):
        self.window = window
        self.every = every
        self.clock = clock
        self._samples: deque[tuple[float, dict[tuple[str, ...], float]]] = deque()
        self._lock = threading.Lock()

    def delta(
        self, totals: dict[tuple[str, ...], float]
    ) -> tuple[dict[tuple[str, ...], float], float]:
        """Growth since about ``window`` seconds ago, and the seconds it covers."""
        now = self.clock()
        with self._lock:
            samples = self._samples
            if not samples or now - samples[-1][0] >= self.every:
                samples.append((now, dict(totals)))
            # The baseline is the oldest sample inside the window: the growth
            # reported never covers more than the window, and says how much it covers.
            while len(samples) > 1 and now - samples[0][0] > self.window:
                samples.popleft()
            since, base = samples[0]
        growth = {k: v - base.get(k, 0.0) for k, v in totals.items() if v - base.get(k, 0.0) > 0}
        return growth, now - since


class RateHistory:
    """Each breaker's error rate over the last minutes, for the sparklines.

    Sampled (at most every ``every`` seconds) when the dashboard is polled, so a
    page opened now, or reloaded, still shows how the breakers got where they are.
    """

    def __init__(self, *, span: float = 180.0, every: float = 2.0, clock: Clock = time.time):
        self.span = span
        self.every = every
        self.clock = clock
        self._rates: dict[str, deque[tuple[float, float]]] = {}
        self._last = -1e18
        self._lock = threading.Lock()

    def record(self, breakers: list[dict[str, Any]]) -> None:
        now = self.clock()
        with self._lock:
            if now - self._last < self.every:
                return
            self._last = now
            for b in breakers:
                points = self._rates.setdefault(b["name"], deque())
                points.append((round(now, 1), b["error_rate"]))
            for name, points in list(self._rates.items()):
                while points and now - points[0][0] > self.span:
                    points.popleft()
                if not points:
                    del self._rates[name]

    def get(self, name: str) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._rates.get(name, ()))


_rejections = CounterHistory()
_deadlines = CounterHistory()
_rates = RateHistory()


def history() -> dict[str, Any]:
    """Top rejecting rules and deadline misses over the last minute, plus totals."""
    rejected = counter_totals("resilience_requests_rejected", ("rule", "reason"))
    recent, seconds = _rejections.delta(rejected)
    deadline = counter_totals("resilience_deadline_exceeded", ("route",))
    recent_deadline, _ = _deadlines.delta(deadline)
    top = sorted(recent.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {
        "window_seconds": round(seconds, 1),
        "top_rejections": [
            {
                "rule": rule,
                "reason": reason,
                "count": int(count),
                "total": int(rejected[(rule, reason)]),
            }
            for (rule, reason), count in top
        ],
        "deadline_exceeded": [
            {
                "route": route,
                "last_minute": int(recent_deadline.get((route,), 0)),
                "total": int(total),
            }
            for (route,), total in sorted(deadline.items(), key=lambda item: -item[1])
        ],
        "sampled_at": time.time(),
    }


# -- permissions -------------------------------------------------------------------

OPERATE = "resilience_django.operate_breakers"
# "viewing: staff with the app's view permissions" (DESIGN.md): any of these will do.
_VIEW = (
    "resilience_django.view_breakerdashboard",
    "resilience_django.view_breakerpolicy",
    "resilience_django.view_limitrule",
    "resilience_django.view_routedeadline",
    OPERATE,
)


def can_view(user: Any) -> bool:
    """Staff who may see the dashboard."""
    return bool(user.is_active and user.is_staff and any(user.has_perm(p) for p in _VIEW))


def can_operate(user: Any) -> bool:
    """Staff who may force-open, force-close, reset and disable breakers."""
    return bool(user.is_active and user.is_staff and user.has_perm(OPERATE))


# -- state -------------------------------------------------------------------------


def dashboard_state(user: Any = None) -> dict[str, Any]:
    """The whole dashboard as one JSON-ready dict."""
    from .breakers.fleet import fleet_snapshot
    from .limiting.health import health

    try:
        breakers = aggregate_breakers(fleet_snapshot())
        fleet_error = None
    except Exception as exc:  # the fleet store is down: say so, show the rest
        breakers, fleet_error = [], f"{type(exc).__name__}: {exc}"
    _rates.record(breakers)
    for breaker in breakers:
        breaker["history"] = _rates.get(breaker["name"])
    processes = {(p["host"], p["pid"]) for b in breakers for p in b["processes"]}
    return {
        "time": time.time(),
        "breakers": breakers,
        "processes": len(processes),
        "fleet_error": fleet_error,
        "limiter": health(),
        **history(),
        "can_operate": bool(user is not None and can_operate(user)),
    }


# -- the endpoint ------------------------------------------------------------------

# Spring actuator's updateState values, and our own action names.
ACTION_ALIASES = {
    "FORCE_OPEN": "force_open",
    "CLOSE": "force_close",
    "CLOSED": "force_close",
    "FORCE_CLOSE": "force_close",
    "RESET": "reset",
    "DISABLE": "disable",
    "force_open": "force_open",
    "force_close": "force_close",
    "reset": "reset",
    "disable": "disable",
}
ACTION_LABELS = {
    "force_open": "Forced open",
    "force_close": "Forced closed",
    "reset": "Reset",
    "disable": "Disabled",
}


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _requested_action(request: HttpRequest) -> str | None:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return None
        raw = body.get("updateState", body.get("action")) if isinstance(body, dict) else None
    else:
        raw = request.POST.get("updateState", request.POST.get("action"))
    return ACTION_ALIASES.get(raw) if isinstance(raw, str) else None


def _known(name: str, breakers: list[dict[str, Any]]) -> bool:
    from .breakers.registry import registry
    from .breakers.settings import breaker_settings
    from .live import admin_rules

    return (
        any(b["name"] == name for b in breakers)
        or name in breaker_settings()
        or name in admin_rules().breaker_policies
        or name in registry._breakers
    )


def api_view(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """GET: state (all breakers, or one); POST <name>: an operator action.

    Wrapped by ``AdminSite.admin_view`` (login and CSRF) in ``admin.py``.
    """
    if not can_view(request.user):
        return _error(403, "You may not view the breaker dashboard.")
    if request.method == "GET":
        state = dashboard_state(request.user)
        if name is None:
            return JsonResponse(state)
        for breaker in state["breakers"]:
            if breaker["name"] == name:
                return JsonResponse(breaker)
        return _error(404, f"No breaker {name!r} in the fleet.")
    if request.method != "POST" or name is None:
        return _error(405, "GET for state; POST to <breaker>/ for an action.")
    if not can_operate(request.user):
        return _error(403, f"Operating breakers needs the {OPERATE} permission.")
    action = _requested_action(request)
    if action is None:
        return _error(400, f"Send updateState: one of {', '.join(sorted(ACTION_ALIASES)[:5])}.")
    from .breakers.fleet import fleet_snapshot, send_command

    if not _known(name, aggregate_breakers(fleet_snapshot())):
        return _error(404, f"No breaker {name!r} in the fleet.")
    version = send_command(name, action)
    _log(request, name, action, version)
    return JsonResponse({"name": name, "action": action, "version": version})


def _log(request: HttpRequest, name: str, action: str, version: int) -> None:
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    from .models import BreakerDashboard

    LogEntry.objects.create(
        user_id=cast(Any, request.user.pk),
        content_type=ContentType.objects.get_for_model(BreakerDashboard),
        object_id=name,
        object_repr=f"breaker {name}"[:200],
        action_flag=CHANGE,
        change_message=f"{ACTION_LABELS[action]} breaker '{name}' in every process "
        f"(command version {version}).",
    )
