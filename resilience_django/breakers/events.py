"""State-change announcements that never block or break the caller: a queue, a daemon thread
that logs and counts, and one bounded worker per listener (docs/breakers.md, "Hearing about
transitions")."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics

if TYPE_CHECKING:
    from .state import Breaker

__all__ = ["LISTENER_QUEUE", "Transition", "emit", "flush", "track"]

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


# A flush() barrier is a list of events: the dispatcher's, then (appended by the
# dispatcher before it sets its own) one for each listener worker alive then.
_Item = tuple[Transition, "tuple[Listener, ...]"] | list[threading.Event]

#: Transitions a listener may fall behind by before its newer ones are dropped.
LISTENER_QUEUE = 1000
_IDLE = 30.0  # seconds a listener's worker waits for work before it ends

_queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
_breakers: weakref.WeakSet[Breaker] = weakref.WeakSet()
# A WeakSet iterates in Python code: a breaker made by another thread meanwhile
# would end the iteration with "Set changed size", and the daemon thread with it.
_breakers_lock = threading.Lock()
_FLUSH_EVERY = 1.0


def track(breaker: Breaker) -> None:
    """Flush this breaker's call counters to Prometheus from the daemon thread."""
    with _breakers_lock:
        _breakers.add(breaker)
    _ensure_thread()


def emit(transition: Transition, listeners: tuple[Listener, ...]) -> None:
    """Queue a transition for delivery; returns at once."""
    _queue.put((transition, listeners))
    _ensure_thread()


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything queued so far reached every listener (tests, shutdown); ``False``
    when that took longer than ``timeout`` (a listener is still busy)."""
    deadline = time.monotonic() + timeout
    barrier = [threading.Event()]
    _queue.put(barrier)
    _ensure_thread()
    return all(reached.wait(deadline - time.monotonic()) for reached in barrier)


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _start_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="resilience-breaker-events", daemon=True)
            _thread.start()


class _Worker:
    """One listener's own thread and bounded queue (see the module docstring)."""

    __slots__ = ("_items", "dropped", "key", "listener")

    def __init__(self, key: Hashable, listener: Listener) -> None:
        self.key = key
        self.listener = listener
        self._items: queue.SimpleQueue[Transition | threading.Event] = queue.SimpleQueue()
        self.dropped = 0

    def offer(self, item: Transition | threading.Event) -> bool:
        """Queue ``item`` (under ``_workers_lock``); ``False`` for a transition that finds the
        queue full.  Barriers always fit: a full queue must not stall ``flush``."""
        if isinstance(item, Transition) and self._items.qsize() >= LISTENER_QUEUE:
            self.dropped += 1
            return False
        self._items.put(item)
        return True

    def run(self) -> None:
        while True:
            try:
                item = self._items.get(timeout=_IDLE)
            except queue.Empty:
                # Idle: leave, unless the dispatcher handed us something just now.
                with _workers_lock:
                    if self._items.empty():
                        if _workers.get(self.key) is self:
                            del _workers[self.key]
                        return
                continue
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.listener(item)
            except Exception:
                extra = {"breaker": item.breaker}
                logger.exception(
                    "breaker %s: listener %r raised", item.breaker, self.listener, extra=extra
                )


_workers: dict[Hashable, _Worker] = {}
_workers_lock = threading.Lock()


def _hand_over(listener: Listener, transition: Transition) -> None:
    # Bound methods compare equal when they bind the same method to the same
    # object, so a publisher re-attached to many breakers gets one worker.
    key: Hashable = listener
    try:
        hash(listener)
    except TypeError:
        key = ("id", id(listener))
    with _workers_lock:
        worker = _workers.get(key)
        if worker is None:
            worker = _workers[key] = _Worker(key, listener)
            name = "resilience-breaker-listener"
            threading.Thread(target=worker.run, name=name, daemon=True).start()
        if worker.offer(transition):
            return
    dropped = worker.dropped
    if dropped & (dropped - 1) == 0:  # 1, 2, 4, 8...: a stuck listener logs rarely
        logger.warning(
            "breaker %s: listener %r is %d transitions behind; dropped %d so far",
            transition.breaker, listener, LISTENER_QUEUE, dropped,
            extra={"breaker": transition.breaker},
        )  # fmt: skip


# The gauge knows closed, open and half-open.
GAUGE_STATES = {"forced_open": "open", "disabled": "closed", "metrics_only": "closed"}


def _flush_counters() -> None:
    # Batches need the collector itself (the counter moves by more than one).
    counter = metrics._get("breaker_calls")
    with _breakers_lock:
        breakers = list(_breakers)
    for breaker in breakers:
        try:
            for outcome, delta in breaker._counter_deltas():
                if counter is not None:
                    counter.labels(breaker.name, outcome).inc(delta)
            # Also keeps the gauge right for breakers that never changed state.
            state = breaker.state
            metrics.breaker_state(breaker.name, GAUGE_STATES.get(state, state))
        except Exception:
            logger.exception("breaker %s: counter flush failed", breaker.name)


def _run() -> None:
    while True:
        try:
            item = _queue.get(timeout=_FLUSH_EVERY)
        except queue.Empty:
            _flush_counters()
            continue
        if isinstance(item, list):
            _flush_counters()
            # flush() means "everything queued so far was delivered", listeners included.
            with _workers_lock:
                for worker in _workers.values():
                    item.append(threading.Event())
                    worker.offer(item[-1])
            item[0].set()
            continue
        t, listeners = item
        logger.warning(
            "breaker %s: %s -> %s (%s)", t.breaker, t.from_state, t.to_state, t.reason,
            extra={"breaker": t.breaker, "from_state": t.from_state, "to_state": t.to_state,
                   "reason": t.reason, "generation": t.generation},
        )  # fmt: skip
        try:
            metrics.breaker_transition(t.breaker, t.from_state, t.to_state)
            metrics.breaker_state(t.breaker, GAUGE_STATES.get(t.to_state, t.to_state))
        except Exception:  # metrics must never stop listeners from hearing the news
            logger.exception("breaker %s: metrics update failed", t.breaker)
        for listener in listeners:
            _hand_over(listener, t)


def _after_fork() -> None:
    # Threads do not survive fork; the next emit starts fresh ones.
    global _thread, _queue, _workers_lock, _breakers_lock, _start_lock
    _thread = None
    _queue = queue.SimpleQueue()
    _workers.clear()
    # Another thread may have held any of these at the fork.
    _workers_lock = threading.Lock()
    _breakers_lock = threading.Lock()
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
