from __future__ import annotations

import pytest

from resilience_django.clock import ManualClock
from resilience_django.retrying.budget import MAX_BUDGETS
from resilience_django.retrying.throttle import AdaptiveThrottle, LocallyThrottled


def test_healthy_backend_means_no_local_rejection() -> None:
    throttle = AdaptiveThrottle("t", clock=ManualClock(), random_=lambda: 0.0)
    for _ in range(100):
        assert throttle.allow()
        throttle.record(accepted=True)
    assert throttle.probability() == 0.0


def test_probability_follows_the_sre_formula_with_k_2() -> None:
    throttle = AdaptiveThrottle("t", clock=ManualClock(), random_=lambda: 0.99)
    for i in range(100):
        throttle.allow()
        throttle.record(accepted=i < 30)  # 30 of 100 accepted
    assert throttle.probability() == pytest.approx((100 - 2 * 30) / 101)


def test_rejects_locally_with_probability_p() -> None:
    draw = [0.0]
    throttle = AdaptiveThrottle("t", clock=ManualClock(), random_=lambda: draw[0])
    for _ in range(20):
        throttle.allow()
        throttle.record(accepted=False)
    p = throttle.probability()
    assert p == pytest.approx(20 / 21)
    draw[0] = p - 0.01
    assert not throttle.allow()
    draw[0] = p + 0.01
    assert throttle.allow()
    draw[0] = 0.0
    with pytest.raises(LocallyThrottled):
        throttle.check()


def test_old_outcomes_leave_the_window() -> None:
    clock = ManualClock()
    throttle = AdaptiveThrottle("t", window=120, clock=clock)
    for _ in range(50):
        throttle.allow()
        throttle.record(accepted=False)
    assert throttle.probability() > 0.9
    clock.advance(121)
    assert throttle.probability() == 0.0


def test_fifty_thousand_distinct_targets_keep_at_most_the_bound_least_recent_dropped() -> None:
    from resilience_django.retrying import throttle as module

    hot = module.throttle_for("pricing")
    try:
        for i in range(50_000):
            module.throttle_for(f"host-{i}.example")
            if i % 5_000 == 0:
                assert module.throttle_for("pricing") is hot  # in use: never dropped
        held = module._throttles._items
        assert len(held) == MAX_BUDGETS
        assert "host-49999.example" in held and "host-0.example" not in held
        assert module.throttle_for("pricing") is hot
    finally:
        module._throttles._items.clear()
