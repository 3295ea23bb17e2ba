"""The breaker state machine: Closed, Open, Half-open, and the operator states.

Concurrency design (why the closed-state hot path takes no lock):

* The breaker's whole state is one immutable-identity object, a :class:`Phase`,
  held in ``Breaker._phase``.  Every transition builds a *new* Phase (with the next
  generation number and, for the states that measure, a fresh window) and
  publishes it with a single attribute store.  In CPython an attribute load or
  store is atomic (one bytecode under the GIL), so a reader always sees one
  whole Phase, old or new, never a mix.
* The Phase is also the call's token.  ``acquire()`` in a measuring state
  (closed, disabled, metrics-only) is one attribute load and one flag test.
  The result of the call is written into *the token's* window, not the
  breaker's current one: a call that started before a transition writes into a
  window that is already retired, so results of calls started before a
  transition never count in the new state (the generation counter, without a
  compare on the hot path).  Locked paths compare ``token is self._phase``.
* A success in a measuring state adds one to a counter without a lock (the price,
  a lost increment now and then: docs/breakers.md).  Failures, slow calls, the
  once-a-second roll, trips and every half-open trial take ``_lock``: exactly N
  trials, exactly one transition, and rare on a healthy dependency.
* No lock is held while the protected call runs, nor while listeners are told
  (a queue drained by a daemon thread: events.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import metrics
from ..clock import Clock, monotonic
from . import events
from .events import Listener, Transition
from .phase import (
    BASE,
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    MEASURING,
    METRICS_ONLY,
    OPEN,
    CircuitOpen,
    Phase,
)
from .policy import IGNORED, SUCCESS, BreakerPolicy
from .window import OutcomeWindow

__all__ = ["OPEN", "Breaker", "CircuitOpen", "Phase"]


class Breaker:
    """A circuit breaker for one dependency or route.

    >>> from resilience_django.clock import ManualClock
    >>> b = Breaker("pricing", BreakerPolicy(failure_threshold=2), clock=ManualClock())
    >>> for _ in range(2):
    ...     _ = b.record_failure(b.acquire())
    >>> b.state
    'open'
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_done",
        "_ignored",
        "_listeners",
        "_lock",
        "_phase",
        "_rejected",
        "_reported",
        "_result_check",
        "_retrips",
        "_slow",
        "_slow_fails",
        "_trials",
        "_wall",
        "last_transition",
        "name",
        "policy",
        "shadow_trips",
    )

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Clock = monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.name = name
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()
        self._retrips = 0
        self._rejected = 0
        self._ignored = 0
        self._trials = [0, 0]  # successful, failed half-open trials (lifetime)
        self._done = [0, 0]  # calls, failures of retired windows (lifetime)
        self._reported: dict[str, int] = {}
        self.shadow_trips = 0
        self.last_transition: Transition | None = None
        self._set_policy(policy or BreakerPolicy())
        now = clock()
        self._phase = Phase(BASE[self.policy.mode], 0, self._new_window(now), now, 0.0)
        events.track(self)

    # -- configuration ---------------------------------------------------------------

    def _set_policy(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._slow = policy.slow_call
        self._result_check = policy.failure_result
        # Without a slow-call rate of its own, a slow call simply counts as a failure.
        self._slow_fails = policy.slow_call_rate is None

    def _new_window(self, now: float) -> OutcomeWindow:
        return OutcomeWindow(round(self.policy.window), self.policy.ewma_alpha, now)

    def configure(self, policy: BreakerPolicy) -> None:
        """Apply a new policy in place (settings reloaded); references stay valid."""
        with self._lock:
            old = self.policy
            self._set_policy(policy)
            p = self._phase
            now = self._clock()
            # A new mode takes over at once, except from an operator's force-open.
            if policy.mode != old.mode and p.state is not FORCED_OPEN:
                self._set(BASE[policy.mode], now, "policy changed")
            elif p.free and (policy.window != old.window or policy.ewma_alpha != old.ewma_alpha):
                self._retire(p.window)
                p.window = self._new_window(now)
            elif p.state is OPEN:
                # A shorter open time holds at once (an open_for of a day set by
                # mistake and put right); a longer one from the next trip.  Only
                # when it did shorten: a shared marker may have moved ``until``.
                duration = policy.open_duration(self._retrips)
                if duration < old.open_duration(self._retrips):
                    p.until = min(p.until, p.entered + duration)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(transition)`` on every state change, from its own daemon thread."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            # ``!=``, not ``is not``: a bound method is a new object at each access.
            self._listeners = tuple(x for x in self._listeners if x != listener)

    # -- the call protocol -------------------------------------------------------------

    @property
    def state(self) -> str:
        """The current state name (``closed``, ``open``, ``half_open``, ``forced_open``, ...)."""
        return self._phase.state

    def acquire(self) -> Phase:
        """Admit a call and return its token, or raise :class:`CircuitOpen`."""
        p = self._phase
        if p.free:
            return p
        return self._acquire_slow(p)

    def try_acquire(self) -> Phase | None:
        """The token if calls are admitted freely, else ``None`` (no rejection counted, no
        move to half-open): for callers with somewhere else to go, like the limiter."""
        p = self._phase
        return p if p.free else None

    def _acquire_slow(self, p: Phase) -> Phase:
        policy = self.policy
        while not p.free:
            now = self._clock()
            if p.state is OPEN:
                if now < p.until:
                    raise self._reject(p.until - now)
                self.poll()  # to half-open, unless a shared marker moved ``until`` meanwhile
            elif p.state is HALF_OPEN:
                with self._lock:
                    if self._phase is p:
                        if p.admitted < policy.half_open_calls:
                            if p.admitted == p.succeeded + p.failed:  # none under way: a trial
                                p.entered = now  # is stuck half_open_max_wait after its start
                            p.admitted += 1
                            return p
                        deadline = p.entered + policy.half_open_max_wait
                        if now < deadline:
                            raise self._reject(min(policy.open_for, deadline - now))
                        self._trip(now, "half-open trial calls did not finish in time")
            else:  # forced open by an operator
                raise self._reject(policy.open_for)
            p = self._phase
        return p

    def _reject(self, retry_after: float) -> CircuitOpen:
        # Only the refusing path pays for the trace event; the closed path never gets here.
        self._rejected += 1
        metrics.breaker_short_circuit(self.name, retry_after)
        return CircuitOpen(self.name, retry_after)

    def record_success(self, token: Phase, duration: float | None = None) -> Transition | None:
        """The call admitted with ``token`` succeeded (``duration`` in seconds, if known); the
        transition it made, if any (a slow call can trip, a trial close): one caller gets each."""
        return self._ok(token, self._clock(), duration)

    def record_failure(
        self, token: Phase, duration: float | None = None, exc: BaseException | None = None
    ) -> Transition | None:
        """The call failed (with ``exc``, the policy decides whether it counts); the trip it
        made, if any, so a caller can announce it at once and exactly once."""
        return self._failed(token, self._clock(), duration, exc)

    def release(self, token: Phase) -> None:
        """The call ended without a verdict (cancelled, caller's deadline); free its slot."""
        self._ignored += 1
        if not token.free:
            with self._lock:
                if self._phase is token and token.admitted > 0:
                    token.admitted -= 1

    def _ok(self, token: Phase, now: float, duration: float | None) -> Transition | None:
        slow = self._slow
        is_slow = slow is not None and duration is not None and duration >= slow
        if not token.free:
            return self._trial(token, now, ok=not is_slow)
        if is_slow:
            return self._record(token, now, duration, failure=self._slow_fails, slow=True)
        # The hot path: no lock (see the module docstring).
        w = token.window
        if now >= w.roll_at:  # once a second: the roll and its checks take the lock
            with self._lock:
                token.window.roll(int(now))
                if self._phase is token:
                    self._check(token, now)
            w = token.window
        w.cur_calls += 1
        token.consecutive = 0
        return None

    def _failed(
        self, token: Phase, now: float, duration: float | None, exc: BaseException | None
    ) -> Transition | None:
        if exc is not None:
            verdict = self.policy.classify(exc, duration)
            if verdict is SUCCESS:
                return self._ok(token, now, duration)
            if verdict is IGNORED:
                self.release(token)
                return None
        if token.free:
            slow = self._slow
            is_slow = slow is not None and duration is not None and duration >= slow
            return self._record(token, now, duration, failure=True, slow=is_slow)
        return self._trial(token, now, ok=False)

    # -- locked paths --------------------------------------------------------------

    def _record(
        self, token: Phase, now: float, duration: float | None, *, failure: bool, slow: bool
    ) -> Transition | None:
        with self._lock:
            if self._phase is not token:
                return None  # started in an earlier generation: does not count now
            if failure and duration is not None and self.policy.stall_counts_once:
                if now - duration < token.counted_at:
                    return None  # under way when the last failure counted: the same stall
                token.counted_at = now
            token.window.add(now, failure=failure, slow=slow)
            token.consecutive = token.consecutive + 1 if failure else 0
            return self._check(token, now)

    def _check(self, token: Phase, now: float) -> Transition | None:
        if token.state is DISABLED:
            return None
        reason = self._trip_reason(token)
        if reason is None:
            return None
        if token.state is METRICS_ONLY:
            # Measure, never trip: say what would have happened and start afresh.
            self.shadow_trips += 1
            extra = {"breaker": self.name, "reason": reason, "shadow": True}
            message = "breaker %s would open (metrics only): %s"
            events.logger.warning(message, self.name, reason, extra=extra)
            self._retire(token.window)
            token.window = self._new_window(now)
            token.consecutive = 0
            return None
        return self._trip(now, reason)

    def _trip_reason(self, token: Phase) -> str | None:
        policy = self.policy
        w = token.window
        if policy.failure_threshold is not None and token.consecutive >= policy.failure_threshold:
            return f"{token.consecutive} consecutive failures"
        if w.total_calls >= policy.min_calls:
            rate = policy.error_rate
            if rate is not None and _exceeds(w.total_failures, rate, w.total_calls):
                return f"failure rate {w.failure_rate:.0%} over the last {policy.window:g}s"
            rate = policy.slow_call_rate
            if rate is not None and _exceeds(w.total_slow, rate, w.total_calls):
                return f"slow-call rate {w.slow_rate:.0%} over the last {policy.window:g}s"
        if policy.ewma_threshold is not None and _exceeds(w.ewma, policy.ewma_threshold, 1.0):
            return f"failure-rate EWMA {w.ewma:.2f}"
        return None

    def _trial(self, token: Phase, now: float, *, ok: bool) -> Transition | None:
        with self._lock:
            if self._phase is not token:
                return None
            policy = self.policy
            need = policy.trials_to_close
            if ok:
                token.succeeded += 1
                self._trials[0] += 1
            else:
                token.failed += 1
                self._trials[1] += 1
            # Decide as soon as the outcome is certain, not when the last trial ends.
            trials = policy.half_open_calls
            if token.succeeded >= need:
                self._retrips = 0
                reason = f"{token.succeeded} of {trials} trial calls succeeded"
                return self._set(BASE[policy.mode], now, reason)
            if token.failed > trials - need:
                return self._trip(now, f"{token.failed} of {trials} trial calls failed")
            return None

    def _trip(self, now: float, reason: str) -> Transition:
        # Lock held.  A trip from half-open is a re-trip: the open time grows.
        self._retrips = self._retrips + 1 if self._phase.state is HALF_OPEN else 0
        return self._set(OPEN, now, reason, until=now + self.policy.open_duration(self._retrips))

    def _set(self, state: str, now: float, reason: str, until: float = 0.0) -> Transition:
        # Lock held.  Exactly one caller gets here per transition: everyone else
        # finds ``self._phase`` already replaced when they take the lock.
        old = self._phase
        if old.free:
            self._retire(old.window)
        window = self._new_window(now) if state in MEASURING else old.window
        new = Phase(state, old.gen + 1, window, now, until)
        self._phase = new  # one store publishes the whole new generation
        transition = Transition(self.name, old.state, state, reason, self._wall(), new.gen)
        self.last_transition = transition
        events.emit(transition, self._listeners)
        return transition

    def _retire(self, window: OutcomeWindow) -> None:
        calls, failures = window.lifetime()
        self._done[0] += calls
        self._done[1] += failures

    # -- operator commands and housekeeping ---------------------------------------------

    def force_open(self, reason: str = "forced open by an operator") -> None:
        self._hold(FORCED_OPEN, reason)

    def force_close(self, reason: str = "closed by an operator") -> None:
        self.reset(reason)

    def disable(self, reason: str = "disabled by an operator") -> None:
        self._hold(DISABLED, reason)

    def _hold(self, state: str, reason: str) -> None:
        with self._lock:
            if self._phase.state is not state:
                self._set(state, self._clock(), reason)

    def reset(self, reason: str = "reset by an operator") -> Transition | None:
        """Back to the policy's base state with empty statistics; the transition, if one."""
        with self._lock:
            self._retrips = 0
            base = BASE[self.policy.mode]
            p = self._phase
            now = self._clock()
            if p.state is not base:
                return self._set(base, now, reason)
            self._retire(p.window)
            p.window = self._new_window(now)
            p.consecutive = 0
            return None

    def open_until(self, until: float, reason: str = "opened by another process") -> None:
        """Open (shared mode) until the monotonic time ``until``, unless the operator rules."""
        with self._lock:
            p = self._phase
            now = self._clock()
            if until <= now or p.state not in (CLOSED, HALF_OPEN, OPEN):
                return
            if p.state is OPEN:
                p.until = max(p.until, until)
            else:
                self._set(OPEN, now, reason, until=until)

    def poll(self) -> None:
        """Make time-driven transitions due now (the fleet thread calls this each second)."""
        p = self._phase
        now = self._clock()
        if p.state is OPEN and now >= p.until:
            with self._lock:
                if self._phase is p and now >= p.until:
                    self._set(HALF_OPEN, now, "open_for elapsed")
        elif p.state is HALF_OPEN and now - p.entered >= self.policy.half_open_max_wait:
            with self._lock:
                if self._phase is p and p.admitted > p.succeeded + p.failed:
                    self._trip(now, "half-open trial calls did not finish in time")

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of the breaker for dashboards and the fleet store."""
        p = self._phase
        w = p.window
        t = self.last_transition
        return {
            "name": self.name,
            "state": p.state,
            "generation": p.gen,
            "mode": self.policy.mode,
            "shared": self.policy.shared,
            "calls": w.total_calls if p.free else 0,
            "failures": w.total_failures if p.free else 0,
            "slow": w.total_slow if p.free else 0,
            "failure_rate": round(w.failure_rate, 4) if p.free else 0.0,
            "slow_rate": round(w.slow_rate, 4) if p.free else 0.0,
            "ewma": round(w.ewma, 4) if p.free else 0.0,
            "consecutive_failures": p.consecutive,
            "retry_after": round(max(0.0, p.until - self._clock()), 3) if p.state is OPEN else 0.0,
            "trials": {"admitted": p.admitted, "succeeded": p.succeeded, "failed": p.failed},
            "rejected": self._rejected,
            "shadow_trips": self.shadow_trips,
            "last_transition": None
            if t is None
            else {"from": t.from_state, "to": t.to_state, "reason": t.reason, "at": t.at},
        }

    def _counter_deltas(self) -> list[tuple[str, int]]:
        """Outcome counts not yet reported to Prometheus (called by the events thread)."""
        p = self._phase
        calls, failures = self._done
        if p.free:
            c, f = p.window.lifetime()
            calls, failures = calls + c, failures + f
        totals = {
            "success": calls - failures + self._trials[0],
            "failure": failures + self._trials[1],
            "rejected": self._rejected,
            "ignored": self._ignored,
        }
        out = []
        for outcome, total in totals.items():
            delta = total - self._reported.get(outcome, 0)
            if delta > 0:
                self._reported[outcome] = total
                out.append((outcome, delta))
        return out


def _exceeds(count: float, rate: float, total: float) -> bool:
    """Whether ``count`` of ``total`` is above ``rate`` (1.0: all of them; docs/breakers.md)."""
    # The slack keeps float rounding from tripping at the rate: 0.57 * 100 is 56.99999999999999.
    if rate >= 1.0:
        return count >= total
    return count > rate * total * (1.0 + 1e-9)
