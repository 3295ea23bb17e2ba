"""State-change announcements that never block or break the caller.

A transition is put on a queue (a non-blocking, lock-cheap ``SimpleQueue.put``)
and a daemon thread delivers it: it logs the transition on the
``resilience_django.breakers`` logger, updates the Prometheus metrics and calls
the listeners.  An exception in a listener is logged and swallowed.  The thread
also flushes each breaker's call counters to Prometheus about once a second, so
the hot path never touches a Prometheus label lookup.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics

if TYPE_CHECKING:
    from .state import Breaker

__all__ = ["Transition", "emit", "flush", "track"]

logger = logging.getLogger("resilience_django.breakers")


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one breaker (``at`` is wall-clock time, for humans and the fleet)."""

    breaker: str
    from_state: str
    to_state: str
    reason: str
    at: float
    generation: int


Listener = Callable[[Transition], Any]
_Item = tuple[Transition, "tuple[Listener, ...]"] | threading.Event

_queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
_breakers: weakref.WeakSet[Breaker] = weakref.WeakSet()
_FLUSH_EVERY = 1.0


def track(breaker: Breaker) -> None:
    """Flush this breaker's call counters to Prometheus from the daemon thread."""
    _breakers.add(breaker)
    _ensure_thread()


def emit(transition: Transition, listeners: tuple[Listener, ...]) -> None:
    """Queue a transition for delivery; returns at once."""
    _queue.put((transition, listeners))
    _ensure_thread()


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything queued so far is delivered (tests, shutdown)."""
    done = threading.Event()
    _queue.put(done)
    _ensure_thread()
    return done.wait(timeout)


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _start_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="resilience-breaker-events", daemon=True)
            _thread.start()


def _deliver(transition: Transition, listeners: tuple[Listener, ...]) -> None:
    logger.warning(
        "breaker %s: %s -> %s (%s)",
        transition.breaker,
        transition.from_state,
        transition.to_state,
        transition.reason,
        extra={
            "breaker": transition.breaker,
            "from_state": transition.from_state,
            "to_state": transition.to_state,
            "reason": transition.reason,
            "generation": transition.generation,
        },
    )
    try:
        metrics.breaker_transition(transition.breaker, transition.from_state, transition.to_state)
        metrics.breaker_state(transition.breaker, _metric_state(transition.to_state))
    except Exception:  # metrics must never stop listeners from hearing the news
        logger.exception("breaker %s: metrics update failed", transition.breaker)
    for listener in listeners:
        try:
            listener(transition)
        except Exception:
            logger.exception(
                "breaker %s: listener %r raised",
                transition.breaker,
                listener,
                extra={"breaker": transition.breaker},
            )


def _metric_state(state: str) -> str:
    if state == "forced_open":
        return "open"
    if state in ("disabled", "metrics_only"):
        return "closed"
    return state


def _flush_counters() -> None:
    for breaker in list(_breakers):
        try:
            for outcome, delta in breaker._counter_deltas():
                _inc_calls(breaker.name, outcome, delta)
            # Also keeps the gauge right for breakers that never changed state.
            metrics.breaker_state(breaker.name, _metric_state(breaker.state))
        except Exception:
            logger.exception("breaker %s: counter flush failed", breaker.name)


def _inc_calls(name: str, outcome: str, delta: int) -> None:
    # metrics.breaker_call() adds one; batches need the collector itself.
    counter = metrics._get("breaker_calls")
    if counter is not None and delta > 0:
        counter.labels(name, outcome).inc(delta)


def _run() -> None:
    while True:
        try:
            item = _queue.get(timeout=_FLUSH_EVERY)
        except queue.Empty:
            _flush_counters()
            continue
        if isinstance(item, threading.Event):
            _flush_counters()
            item.set()
            continue
        _deliver(*item)


def _after_fork() -> None:
    # The thread does not survive fork; the next emit starts a fresh one.
    global _thread, _queue
    _thread = None
    _queue = queue.SimpleQueue()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
