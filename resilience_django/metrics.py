"""Prometheus metrics, optional and lazy, with OpenTelemetry span events and exemplars
(names, labels, multiprocess modes: docs/metrics.md)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .observability import otel, recent, registered

__all__ = [
    "abandoned_views",
    "bad_header",
    "breaker_short_circuit",
    "breaker_state",
    "breaker_transition",
    "concurrency_limit",
    "deadline_exceeded",
    "enabled",
    "event_loop_lag",
    "inflight",
    "limiter_backend_failure",
    "limiter_backend_seconds",
    "limiter_fallback_active",
    "request_rejected",
]

logger = logging.getLogger("resilience_django.metrics")

BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2}
BACKEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# key -> (type, name, documentation, labels, extra kwargs).
_LIVEMAX = {"multiprocess_mode": "livemax"}
_LIVESUM = {"multiprocess_mode": "livesum"}
_SPECS: dict[str, tuple[str, str, str, tuple[str, ...], dict[str, Any]]] = {
    "rejected": ("Counter", "resilience_requests_rejected",
                 "Requests answered without running the view (or that would have been, in "
                 "shadow mode), by rule and reason.", ("rule", "reason"), {}),
    "deadline": ("Counter", "resilience_deadline_exceeded",
                 "Requests answered 504 because their deadline ran out, by route.",
                 ("route",), {}),
    "bad_header": ("Counter", "resilience_bad_headers",
                   "Incoming headers that could not be parsed and were ignored, by header "
                   "(deadline headers, X-Forwarded-For entries that are not an IP address).",
                   ("header",), {}),
    "breaker_state": ("Gauge", "resilience_breaker_state",
                      "Breaker state: 0 closed, 1 open, 2 half-open (max over live processes).",
                      ("breaker",), _LIVEMAX),
    "breaker_transitions": ("Counter", "resilience_breaker_transitions",
                            "Breaker state changes.", ("breaker", "from_state", "to_state"), {}),
    "breaker_calls": ("Counter", "resilience_breaker_calls",
                      "Calls through breakers by outcome (success, failure, rejected, ignored).",
                      ("breaker", "outcome"), {}),
    "backend_seconds": ("Histogram", "resilience_limiter_backend_seconds",
                        "Time spent asking the distributed limiter backend (Redis) for a "
                        "decision.", (), {"buckets": BACKEND_BUCKETS}),
    "backend_failures": ("Counter", "resilience_limiter_backend_failures",
                         "Distributed limiter calls to Redis that failed or timed out; each such "
                         "request was decided locally.", (), {}),
    "fallback": ("Gauge", "resilience_limiter_fallback_active",
                 "1 while distributed limits are decided locally because Redis is unhealthy "
                 "(max over live processes).", (), _LIVEMAX),
    "loop_lag": ("Gauge", "resilience_event_loop_lag_seconds",
                 "How late the event loop ran a timer, largest of the last ~2 s (max over live "
                 "processes).  A report only: the limiter's Redis fallback does not read it.",
                 (), _LIVEMAX),
    "inflight": ("Gauge", "resilience_inflight_requests",
                 "Requests in flight under a shedding rule (sum over live processes).",
                 ("route",), _LIVESUM),
    "abandoned": ("Gauge", "resilience_abandoned_views",
                  "Sync views answered 504 at their deadline whose threads still run, by route "
                  "(sum over live processes); each keeps its shedding slot until it ends.",
                  ("route",), _LIVESUM),
    "concurrency_limit": ("Gauge", "resilience_concurrency_limit",
                          "Requests a shedding rule lets run at once: its fixed limit, or where "
                          "the adaptive controller has it now (sum over live processes).",
                          ("route",), _LIVESUM),
}  # fmt: skip

_lock = threading.Lock()
_collectors: dict[str, Any] | None = None
# Labelled children cached per label tuple: prometheus-client's labels() takes
# a lock and builds tuples, which the hot path need not pay twice.
_children: dict[str, dict[tuple[str, ...], Any]] = {key: {} for key in _SPECS}
_exemplars = False
# prometheus-client opens a file in PROMETHEUS_MULTIPROC_DIR for each new value.
_UNSTORABLE = "PROMETHEUS_MULTIPROC_DIR cannot be written (%s): metrics are not reported"


def _register(prom: Any, key: str) -> Any | None:
    kind, name, doc, labels, extra = _SPECS[key]
    cls = getattr(prom, kind)
    # Registered by this process already (this module reloaded): reuse it.
    existing = registered.COLLECTORS.get(name)
    if isinstance(existing, cls):
        return existing
    try:
        collector = cls(name, doc, labels, **extra)
    except ValueError:
        message = "metric %s is registered by someone else already; not reporting it"
        logger.warning(message, name, extra={"metric": name})
        return None
    registered.COLLECTORS[name] = collector
    return collector


def _build() -> dict[str, Any]:
    global _collectors, _exemplars
    if _collectors is not None:  # built: no lock to take
        return _collectors
    with _lock:
        if _collectors is not None:
            return _collectors
        try:
            import prometheus_client as prom
        except ImportError:
            _collectors = {}
            return _collectors
        try:
            built = {key: _register(prom, key) for key in _SPECS}
        except OSError as exc:  # then nothing can be counted here (events.py asks _get too)
            logger.error(_UNSTORABLE, exc, extra={"error": str(exc)})
            built = {}
        # prometheus-client keeps no exemplars in multiprocess mode.
        _exemplars = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        _collectors = {key: c for key, c in built.items() if c is not None}
        return _collectors


def _get(name: str) -> Any:
    """The collector for ``name`` (a key of ``_SPECS``), or None without prometheus-client."""
    return _build().get(name)


def enabled() -> bool:
    """True when prometheus-client is installed and the collectors are registered."""
    return bool(_build())


class _Unreported:
    """Stands in for a collector that is not there (no prometheus-client, a foreign metric)."""

    def inc(self, *args: Any) -> Any:
        return self

    set = observe = labels = inc


def _child(key: str, labels: tuple[str, ...]) -> Any:
    child = _children[key].get(labels)
    if child is None:
        collector = _get(key) or _Unreported()
        try:
            child = collector.labels(*labels) if labels else collector
        except OSError as exc:  # the directory went away: once per series, not per call
            logger.error(_UNSTORABLE, exc, extra={"error": str(exc)})
            child = _Unreported()
        _children[key][labels] = child
    return child


def _count(key: str, labels: tuple[str, ...], span: Any | None) -> None:
    child = _child(key, labels)  # first: it builds the collectors, which sets _exemplars
    child.inc(1, otel.trace_exemplar(span) if span is not None and _exemplars else None)


def request_rejected(rule: str, reason: str) -> None:
    """A request was (or in shadow mode would have been) refused by ``rule``."""
    span = otel.recording_span()
    _count("rejected", (rule, reason), span)
    recent.rejections.add((rule, reason))  # the fleet's "last minute" (dashboard)
    if span is not None:
        attributes = {"resilience.rule": rule, "resilience.reason": reason}
        otel.add_event(span, "resilience.request_rejected", attributes)


def deadline_exceeded(route: str, budget: float | None = None) -> None:
    """A request was answered 504; ``route`` is the route label of its ``budget`` (seconds)."""
    span = otel.recording_span()
    _count("deadline", (route,), span)
    recent.deadlines.add((route,))
    if span is not None:
        attributes = {
            "resilience.route": route,
            "resilience.reason": "deadline_exceeded",
            # Spent by definition; the live deadline, when there is one, refines it.
            otel.ATTR_REMAINING: 0.0,
            "resilience.deadline.budget_s": None if budget is None else round(budget, 6),
        }
        otel.add_event(span, "resilience.deadline_exceeded", attributes)


def bad_header(header: str) -> None:
    _count("bad_header", (header,), None)


def breaker_state(breaker: str, state: str) -> None:
    """``state`` is ``"closed"``, ``"open"`` or ``"half_open"`` (forced states map onto these)."""
    _child("breaker_state", (breaker,)).set(BREAKER_STATE_VALUES.get(state, 1))


def breaker_transition(breaker: str, from_state: str, to_state: str) -> None:
    _count("breaker_transitions", (breaker, from_state, to_state), None)


def breaker_short_circuit(breaker: str, retry_after: float | None = None) -> None:
    """A breaker refused a call: a span event only, so the refusal shows on the caller's
    trace (the breakers' event thread counts ``outcome="rejected"`` in batches)."""
    span = otel.recording_span()
    if span is not None:
        attributes = {
            "resilience.breaker": breaker,
            "resilience.reason": "breaker_open",
            "resilience.retry_after_s": None if retry_after is None else round(retry_after, 6),
        }
        otel.add_event(span, "resilience.breaker_short_circuit", attributes)


def limiter_backend_seconds(seconds: float) -> None:
    histogram = _child("backend_seconds", ())
    # An exemplar here links a slow Redis answer to the request that waited for it.
    span = otel.recording_span() if _exemplars else None
    histogram.observe(seconds, None if span is None else otel.trace_exemplar(span))


def limiter_backend_failure() -> None:
    _child("backend_failures", ()).inc()


def limiter_fallback_active(active: bool, reason: str | None = None) -> None:
    """Distributed limits went local (``active``) or back to Redis."""
    _child("fallback", ()).set(1 if active else 0)
    span = otel.recording_span()
    if span is not None:
        attributes = {"resilience.fallback_active": active, "resilience.reason": reason}
        otel.add_event(span, "resilience.limiter_fallback", attributes)


def event_loop_lag(seconds: float) -> None:
    _child("loop_lag", ()).set(seconds)


def inflight(route: str, delta: int) -> None:
    """``delta`` requests entered (+) or left (-) the shedding rule ``route``."""
    _child("inflight", (route,)).inc(delta)


def abandoned_views(route: str, delta: int) -> None:
    """``delta`` views of ``route`` were abandoned at their deadline (+) or have ended (-)."""
    _child("abandoned", (route,)).inc(delta)


def concurrency_limit(route: str, limit: int) -> None:
    _child("concurrency_limit", (route,)).set(limit)
