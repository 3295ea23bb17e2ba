"""What the breaker dashboard shows, as one JSON-ready dict; no Django request in here."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ..clock import Clock
from ..fleet import breaker_rows, fleet_processes, process_report
from ..limiting.health import health
from ..observability.recent import SPAN, window_counts

__all__ = ["RateHistory", "aggregate_breakers", "history", "limiters", "snapshot"]

# Worst first: a breaker is shown in the worst state any process has it in.
_SEVERITY = ("forced_open", "open", "half_open", "metrics_only", "disabled", "closed")
_REFUSING = frozenset({"forced_open", "open"})
# What the dashboard shows of each process's copy of a breaker.
_PROCESS_FIELDS = (
    "host", "pid", "state", "calls", "failure_rate", "slow_rate", "ewma", "rejected", "retry_after",
)  # fmt: skip
_COUNTS = ("calls", "failures", "slow", "rejected")  # summed over the fleet
_PEAKS = ("ewma", "retry_after")  # the fleet's highest


def _numbers(row: Mapping[str, Any]) -> dict[str, float] | None:
    """The row's counts, peaks and transition time, or ``None`` when another process's report
    is malformed (another version's, a hand-written one): it hides its own row, not the page."""
    transition = row.get("last_transition") or None
    try:
        numbers: dict[str, float] = {key: int(row.get(key) or 0) for key in _COUNTS}
        numbers |= {key: float(row.get(key) or 0.0) for key in _PEAKS}
        numbers["at"] = float(transition.get("at") or 0.0) if transition is not None else 0.0
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None
    sound = isinstance(row.get("state"), str) and all(map(math.isfinite, numbers.values()))
    return numbers if sound else None


def aggregate_breakers(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group per-process snapshot rows by breaker into one fleet-wide summary each."""
    grouped: dict[str, list[tuple[Mapping[str, Any], dict[str, float]]]] = {}
    for row in rows:
        if (numbers := _numbers(row)) is not None:
            grouped.setdefault(str(row.get("name")), []).append((row, numbers))
    out = []
    for name, procs in sorted(grouped.items()):
        total = {key: sum(n[key] for _, n in procs) for key in _COUNTS}
        peak = {key: max(n[key] for _, n in procs) for key in _PEAKS}
        transitions = [(n["at"], t) for p, n in procs if (t := p.get("last_transition"))]
        last = max(transitions, key=lambda t: t[0])[1] if transitions else None
        states = [p["state"] for p, _ in procs]
        worst = min(states, key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else 0)
        calls = total["calls"]
        rate = total["failures"] / calls if calls else 0.0
        out.append(
            {
                "name": name,
                "state": worst,
                "states": {s: states.count(s) for s in sorted(set(states))},
                "calls": calls,
                "failures": total["failures"],
                "failure_rate": round(rate, 4),
                # The sparkline's: an open breaker refuses every call, so 100%, not 0%.
                "error_rate": 1.0 if worst in _REFUSING else round(rate, 4),
                "slow_rate": round(total["slow"] / calls, 4) if calls else 0.0,
                "ewma": peak["ewma"],
                "rejected": total["rejected"],
                "retry_after": peak["retry_after"],
                "last_transition": last,
                "processes": [
                    {**{key: p.get(key) for key in _PROCESS_FIELDS}, "reported": p.get("time")}
                    for p, _ in procs
                ],
            }
        )
    return out


class RateHistory:
    """Each breaker's error rate over the last minutes, sampled when the dashboard is polled
    (at most every ``every`` s): a page opened now still shows how they got there."""

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
                self._rates.setdefault(b["name"], deque()).append((round(now, 1), b["error_rate"]))
            for name, points in list(self._rates.items()):
                while points and now - points[0][0] > self.span:
                    points.popleft()
                if not points:
                    del self._rates[name]

    def get(self, name: str) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._rates.get(name, ()))


_rates = RateHistory()


def history(procs: list[dict[str, Any]]) -> dict[str, Any]:
    """Top rejecting rules and deadline misses over the last minute across the fleet, plus
    totals (since each live process started), from the processes' per-second counts."""
    now = time.time()
    rejected = window_counts((p.get("rejections") for p in procs), now=now)
    deadline = window_counts((p.get("deadlines") for p in procs), now=now)
    recent = [(labels, counts) for labels, counts in rejected.items() if counts[0] > 0]
    top = sorted(recent, key=lambda item: (-item[1][0], item[0]))[:10]
    return {
        "window_seconds": SPAN,
        "top_rejections": [  # labels are (rule, reason); a short tuple is padded with ""
            dict(zip(("rule", "reason"), (*labels, "", ""), strict=False), count=count, total=total)
            for labels, (count, total) in top
        ],
        "deadline_exceeded": [
            {"route": labels[0] if labels else "", "last_minute": count, "total": total}
            for labels, (count, total) in sorted(
                deadline.items(), key=lambda item: (-item[1][0], -item[1][1], item[0])
            )
        ],
        "sampled_at": now,
    }


def limiters(procs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each reporting process's limiter backend and health, for the fleet view."""
    out = []
    for p in procs:
        limiter = p.get("limiter")
        if isinstance(limiter, Mapping):
            out.append({"host": p.get("host"), "pid": p.get("pid"), "time": p.get("time"),
                        "configured": p.get("backend"), **limiter})  # fmt: skip
    # Any pid another process wrote: numbers in order, then the rest by their text.
    return sorted(out, key=lambda h: (str(h["host"]), _int_or_zero(h["pid"]), str(h["pid"])))


def _int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) else 0


# The last outage logged, and when: each open tab polls every few seconds.
_store_down: list[Any] = ["", 0.0]


def _log_store_down(why: str) -> None:
    now = time.monotonic()
    if why != _store_down[0] or now - _store_down[1] > 60:
        _store_down[:] = [why, now]
        logging.getLogger("resilience_django.admin").warning("fleet store down: %s", why)


def snapshot(*, can_operate: bool = False) -> dict[str, Any]:
    """The whole dashboard: fleet breakers, limiter health, rejections, deadline misses."""
    try:
        procs, fleet_error = fleet_processes(), None
    except Exception as exc:  # the fleet store is down: say so (its address only in the log)
        kind = type(exc).__name__
        _log_store_down(f"{kind}: {exc}")
        procs, fleet_error = [process_report([])], f"{kind} (see the server log)"
    breakers = [] if fleet_error else aggregate_breakers(breaker_rows(procs))
    _rates.record(breakers)
    for breaker in breakers:
        breaker["history"] = _rates.get(breaker["name"])
    doc = {
        "time": time.time(),
        "breakers": breakers,
        "processes": 0 if fleet_error else len(procs),
        "fleet_error": fleet_error,
        "limiter": health(),
        "limiters": limiters(procs),
        **history(procs),
        "can_operate": can_operate,
    }
    # NaN or infinity from a report is not JSON, and a browser refuses the whole document.
    return dict(json.loads(json.dumps(doc, default=str), parse_constant=lambda _: None))
