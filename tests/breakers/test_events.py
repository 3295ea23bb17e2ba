from __future__ import annotations

import prometheus_client
import pytest

from resilience_django.breakers import events
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.state import Breaker, CircuitOpen


def sample(name: str, labels: dict[str, str]) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_transitions_and_call_outcomes_reach_prometheus_off_the_hot_path() -> None:
    name = "metrics-probe"
    b = Breaker(name, BreakerPolicy(failure_threshold=2, error_rate=None))
    before = sample(
        "resilience_breaker_transitions_total",
        {"breaker": name, "from_state": "closed", "to_state": "open"},
    )
    for _ in range(3):
        b.record_success(b.acquire())
    for _ in range(2):
        b.record_failure(b.acquire())
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert events.flush()
    assert (
        sample(
            "resilience_breaker_transitions_total",
            {"breaker": name, "from_state": "closed", "to_state": "open"},
        )
        == before + 1
    )
    assert sample("resilience_breaker_state", {"breaker": name}) == 1
    calls = {
        outcome: sample("resilience_breaker_calls_total", {"breaker": name, "outcome": outcome})
        for outcome in ("success", "failure", "rejected")
    }
    assert calls == {"success": 3, "failure": 2, "rejected": 1}
