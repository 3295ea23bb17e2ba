"""Prometheus metrics, optional and lazy, with OpenTelemetry linkage.

Every capability reports through the small functions below.  prometheus-client
is imported on first use and the collectors are registered once in its default
registry, so any ``/metrics`` endpoint (ours, django-prometheus's) shows them;
without prometheus-client installed the counters are no-ops.  Registering
again (a reloaded module, a second import path) reuses the collectors already
in the registry instead of raising "Duplicated timeseries".

When an OpenTelemetry span is recording, rejections, deadline expiries, breaker
short-circuits and fallback transitions also add a span event, and counters get
a ``trace_id`` exemplar (not in multiprocess mode: prometheus-client keeps no
exemplars there).  Names, labels and multiprocess modes: ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .observability import otel, recent, registered

__all__ = [
    "BREAKER_STATE_VALUES",
    "abandoned_views",
    "bad_header",
    "breaker_call",
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
    "multiprocess_mode",
    "request_rejected",
]

logger = logging.getLogger("resilience_django.metrics")

BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2}
BACKEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# key -> (type, name, documentation, labels, extra kwargs).  Gauge modes only
# matter with PROMETHEUS_MULTIPROC_DIR; "live*" modes drop a dead worker's
# value once it is marked dead, so a crashed worker cannot keep a panel red.
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


def multiprocess_mode() -> bool:
    """True when prometheus-client writes to ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


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
        logger.warning(
            "metric %s is registered by someone else already; not reporting it",
            name,
            extra={"metric": name},
        )
        return None
    registered.COLLECTORS[name] = collector
    return collector


def _build() -> dict[str, Any]:
    global _collectors, _exemplars
    with _lock:
        if _collectors is not None:
            return _collectors
        try:
            import prometheus_client as prom
        except ImportError:
            _collectors = {}
            return _collectors
        built = {key: _register(prom, key) for key in _SPECS}
        _exemplars = not multiprocess_mode()
        _collectors = {key: c for key, c in built.items() if c is not None}
        return _collectors


def _get(name: str) -> Any:
    """The collector for ``name`` (a key of ``_SPECS``), or None without prometheus-client."""
    collectors = _collectors if _collectors is not None else _build()
    return collectors.get(name)


def enabled() -> bool:
    """True when prometheus-client is installed and the collectors are registered."""
    return bool(_collectors if _collectors is not None else _build())


def _child(key: str, labels: tuple[str, ...]) -> Any | None:
    cache = _children[key]
    child = cache.get(labels)
    if child is None:
        collector = _get(key)
        if collector is None:
            return None
        child = cache[labels] = collector.labels(*labels) if labels else collector
    return child


def _count(key: str, labels: tuple[str, ...], span: Any | None) -> None:
    child = _child(key, labels)
    if child is None:
        return
    if span is not None and _exemplars:
        child.inc(1, otel.trace_exemplar(span))
    else:
        child.inc()


def request_rejected(rule: str, reason: str) -> None:
    """A request was (or in shadow mode would have been) refused by ``rule``."""
    span = otel.recording_span()
    _count("rejected", (rule, reason), span)
    recent.rejections.add((rule, reason))  # the fleet's "last minute" (dashboard)
    if span is not None:
        otel.add_event(
            span, otel.EVENT_REJECTED, {"resilience.rule": rule, "resilience.reason": reason}
        )


def deadline_exceeded(route: str, budget: float | None = None) -> None:
    """A request was answered 504; ``route`` is the route label of its ``budget`` (seconds)."""
    span = otel.recording_span()
    _count("deadline", (route,), span)
    recent.deadlines.add((route,))
    if span is not None:
        attributes: dict[str, Any] = {
            "resilience.route": route,
            "resilience.reason": "deadline_exceeded",
            # Spent by definition; the live deadline, when there is one, refines it.
            otel.ATTR_REMAINING: 0.0,
        }
        if budget is not None:
            attributes["resilience.deadline.budget_s"] = round(budget, 6)
        otel.add_event(span, otel.EVENT_DEADLINE_EXCEEDED, attributes)


def bad_header(header: str) -> None:
    """An incoming header (a deadline, ``x-forwarded-for``) could not be parsed and was ignored."""
    _count("bad_header", (header,), None)


def _set(key: str, labels: tuple[str, ...], value: float) -> None:
    child = _child(key, labels)
    if child is not None:
        child.set(value)


def _add(key: str, labels: tuple[str, ...], delta: float) -> None:
    child = _child(key, labels)
    if child is not None:
        child.inc(delta)


def breaker_state(breaker: str, state: str) -> None:
    """``state`` is ``"closed"``, ``"open"`` or ``"half_open"`` (forced states map onto these)."""
    _set("breaker_state", (breaker,), BREAKER_STATE_VALUES.get(state, 1))


def breaker_transition(breaker: str, from_state: str, to_state: str) -> None:
    _count("breaker_transitions", (breaker, from_state, to_state), None)


def breaker_call(breaker: str, outcome: str) -> None:
    """One call through ``breaker``; ``outcome`` is success, failure, rejected or ignored."""
    span = otel.recording_span() if outcome == "rejected" else None
    _count("breaker_calls", (breaker, outcome), span)
    if span is not None:
        otel.add_event(
            span,
            otel.EVENT_BREAKER_SHORT_CIRCUIT,
            {"resilience.breaker": breaker, "resilience.reason": "breaker_open"},
        )


def breaker_short_circuit(breaker: str, retry_after: float | None = None) -> None:
    """A breaker refused a call: a span event only, so the refusal shows on the caller's
    trace (the breakers' event thread counts ``outcome="rejected"`` in batches)."""
    span = otel.recording_span()
    if span is not None:
        attributes: dict[str, Any] = {
            "resilience.breaker": breaker,
            "resilience.reason": "breaker_open",
        }
        if retry_after is not None:
            attributes["resilience.retry_after_s"] = round(retry_after, 6)
        otel.add_event(span, otel.EVENT_BREAKER_SHORT_CIRCUIT, attributes)


def limiter_backend_seconds(seconds: float) -> None:
    """One round trip to the distributed limiter backend took ``seconds``."""
    histogram = _get("backend_seconds")
    if histogram is not None:
        # An exemplar here links a slow Redis answer to the request that waited for it.
        span = otel.recording_span() if _exemplars else None
        if span is not None:
            histogram.observe(seconds, otel.trace_exemplar(span))
        else:
            histogram.observe(seconds)


def limiter_backend_failure() -> None:
    """One call to Redis failed; its request was decided locally."""
    _add("backend_failures", (), 1)


def limiter_fallback_active(active: bool, reason: str | None = None) -> None:
    """Distributed limits went local (``active``) or back to Redis."""
    _set("fallback", (), 1 if active else 0)
    span = otel.recording_span()
    if span is not None:
        attributes: dict[str, Any] = {"resilience.fallback_active": active}
        if reason is not None:
            attributes["resilience.reason"] = reason
        otel.add_event(span, otel.EVENT_FALLBACK, attributes)


def event_loop_lag(seconds: float) -> None:
    _set("loop_lag", (), seconds)


def inflight(route: str, delta: int) -> None:
    """``delta`` requests entered (+) or left (-) the shedding rule ``route``."""
    _add("inflight", (route,), delta)


def abandoned_views(route: str, delta: int) -> None:
    """``delta`` views of ``route`` were abandoned at their deadline (+) or have ended (-)."""
    _add("abandoned", (route,), delta)


def concurrency_limit(route: str, limit: int) -> None:
    """The shedding rule ``route`` now lets ``limit`` requests run at once in this process."""
    _set("concurrency_limit", (route,), limit)
