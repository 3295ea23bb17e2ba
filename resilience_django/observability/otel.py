"""OpenTelemetry linkage: span events, span status and exemplar trace ids (docs/metrics.md);
``opentelemetry-api`` is optional and imported once, on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ATTR_REMAINING", "add_event", "mark_http_status", "recording_span", "trace_exemplar"]

ATTR_REMAINING = "resilience.deadline.remaining_s"

# The opentelemetry.trace module once _current_span has loaded it (None without it).
_trace: Any = None


def _current_span() -> Any:
    # Replaced on first use by trace.get_current_span (or a function returning None
    # without OpenTelemetry), so later calls pay no "is it loaded?" test.  Threads that race
    # here import the same module and assign the same values: no lock needed.
    global _trace, _current_span
    try:
        from opentelemetry import trace
    except ImportError:
        _current_span = lambda: None  # noqa: E731
        return None
    _trace = trace
    _current_span = trace.get_current_span
    return trace.get_current_span()


def recording_span() -> Any | None:
    """The current span if it records, else ``None`` (also without OpenTelemetry)."""
    span = _current_span()
    return span if span is not None and span.is_recording() else None


def trace_exemplar(span: Any) -> dict[str, str] | None:
    """``{"trace_id": ...}`` for a Prometheus exemplar, when the span is sampled."""
    ctx = span.get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": format(ctx.trace_id, "032x")}


def add_event(span: Any, name: str, attributes: Mapping[str, Any]) -> None:
    """Add ``name`` to ``span`` with the ``attributes`` that are not None, and the
    remaining deadline budget if there is one."""
    # Imported here, not at module level: deadline.py is loaded by then in any
    # process that serves requests, and this keeps observability importable alone.
    from ..deadline import remaining

    known = {key: value for key, value in attributes.items() if value is not None}
    left = remaining()
    if left is not None:
        known[ATTR_REMAINING] = round(left, 6)
    span.add_event(name, known)


def mark_http_status(status: int) -> None:
    """Set the current span's status for an answer we gave instead of the view: ERROR for
    a 5xx, as the HTTP semantic conventions ask of server spans; a 4xx leaves it unset."""
    span = recording_span() if status >= 500 else None
    if span is not None:
        span.set_status(_trace.Status(_trace.StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
