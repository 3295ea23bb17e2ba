"""Prometheus metrics, optional and lazy.

Every capability reports through the small functions below.  prometheus-client
is imported on first use and the collectors are registered once in its default
registry; without prometheus-client installed every function is a no-op.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "bad_header",
    "breaker_call",
    "breaker_state",
    "breaker_transition",
    "deadline_exceeded",
    "inflight",
    "limiter_backend_seconds",
    "limiter_fallback_active",
    "request_rejected",
]

_lock = threading.Lock()
_collectors: dict[str, Any] | None = None

BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2}


def _build() -> dict[str, Any]:
    global _collectors
    with _lock:
        if _collectors is not None:
            return _collectors
        try:
            import prometheus_client as prom
        except ImportError:  # pragma: no cover - exercised only without the dependency
            _collectors = {}
            return _collectors
        _collectors = {
            "rejected": prom.Counter(
                "resilience_requests_rejected",
                "Requests answered without running the view, by rule and reason.",
                ["rule", "reason"],
            ),
            "deadline": prom.Counter(
                "resilience_deadline_exceeded",
                "Requests whose deadline ran out, by route.",
                ["route"],
            ),
            "bad_header": prom.Counter(
                "resilience_bad_headers",
                "Incoming deadline headers that could not be parsed and were ignored.",
                ["header"],
            ),
            "breaker_state": prom.Gauge(
                "resilience_breaker_state",
                "Breaker state: 0 closed, 1 open, 2 half-open.",
                ["breaker"],
                multiprocess_mode="max",
            ),
            "breaker_transitions": prom.Counter(
                "resilience_breaker_transitions",
                "Breaker state changes.",
                ["breaker", "from_state", "to_state"],
            ),
            "breaker_calls": prom.Counter(
                "resilience_breaker_calls",
                "Calls through breakers by outcome (success, failure, rejected, ignored).",
                ["breaker", "outcome"],
            ),
            "backend_seconds": prom.Histogram(
                "resilience_limiter_backend_seconds",
                "Time spent asking the distributed limiter backend for a decision.",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            ),
            "fallback": prom.Gauge(
                "resilience_limiter_fallback_active",
                "1 while distributed limits are decided locally because Redis is unhealthy.",
                multiprocess_mode="max",
            ),
            "inflight": prom.Gauge(
                "resilience_inflight_requests",
                "Requests in flight under a shedding rule.",
                ["route"],
                multiprocess_mode="livesum",
            ),
        }
        return _collectors


def _get(name: str) -> Any:
    collectors = _collectors if _collectors is not None else _build()
    return collectors.get(name)


def request_rejected(rule: str, reason: str) -> None:
    c = _get("rejected")
    if c is not None:
        c.labels(rule, reason).inc()


def deadline_exceeded(route: str) -> None:
    c = _get("deadline")
    if c is not None:
        c.labels(route).inc()


def bad_header(header: str) -> None:
    c = _get("bad_header")
    if c is not None:
        c.labels(header).inc()


def breaker_state(breaker: str, state: str) -> None:
    """``state`` is ``"closed"``, ``"open"`` or ``"half_open"`` (forced states map onto these)."""
    g = _get("breaker_state")
    if g is not None:
        g.labels(breaker).set(BREAKER_STATE_VALUES.get(state, 1))


def breaker_transition(breaker: str, from_state: str, to_state: str) -> None:
    c = _get("breaker_transitions")
    if c is not None:
        c.labels(breaker, from_state, to_state).inc()


def breaker_call(breaker: str, outcome: str) -> None:
    c = _get("breaker_calls")
    if c is not None:
        c.labels(breaker, outcome).inc()


def limiter_backend_seconds(seconds: float) -> None:
    h = _get("backend_seconds")
    if h is not None:
        h.observe(seconds)


def limiter_fallback_active(active: bool) -> None:
    g = _get("fallback")
    if g is not None:
        g.set(1 if active else 0)


def inflight(route: str, delta: int) -> None:
    g = _get("inflight")
    if g is not None:
        g.labels(route).inc(delta)
