"""What a breaker reports: the snapshot for dashboards and the fleet, and metric deltas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .phase import OPEN

if TYPE_CHECKING:
    from .state import Breaker

__all__ = ["counter_deltas", "snapshot"]


def snapshot(b: Breaker) -> dict[str, Any]:
    """A JSON-ready picture of the breaker for dashboards and the fleet store."""
    p = b._phase
    w = p.window
    now = b._clock()
    t = b.last_transition
    return {
        "name": b.name,
        "state": p.state,
        "generation": p.gen,
        "mode": b.policy.mode,
        "shared": b.policy.shared,
        "calls": w.total_calls if p.free else 0,
        "failures": w.total_failures if p.free else 0,
        "slow": w.total_slow if p.free else 0,
        "failure_rate": round(w.failure_rate, 4) if p.free else 0.0,
        "slow_rate": round(w.slow_rate, 4) if p.free else 0.0,
        "ewma": round(w.ewma, 4) if p.free else 0.0,
        "consecutive_failures": p.consecutive,
        "retry_after": round(max(0.0, p.until - now), 3) if p.state is OPEN else 0.0,
        "trials": {"admitted": p.admitted, "succeeded": p.succeeded, "failed": p.failed},
        "rejected": b._rejected,
        "shadow_trips": b.shadow_trips,
        "last_transition": None
        if t is None
        else {"from": t.from_state, "to": t.to_state, "reason": t.reason, "at": t.at},
    }


def counter_deltas(b: Breaker) -> list[tuple[str, int]]:
    """Outcome counts not yet reported to Prometheus (called by the events thread)."""
    p = b._phase
    calls, failures = b._done
    if p.free:
        c, f, _s = p.window.lifetime()
        calls, failures = calls + c, failures + f
    totals = {
        "success": calls - failures + b._trials[0],
        "failure": failures + b._trials[1],
        "rejected": b._rejected,
        "ignored": b._ignored,
    }
    out = []
    for outcome, total in totals.items():
        delta = total - b._reported.get(outcome, 0)
        if delta > 0:
            b._reported[outcome] = total
            out.append((outcome, delta))
    return out
