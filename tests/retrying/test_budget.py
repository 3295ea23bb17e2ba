from __future__ import annotations

import threading

import pytest

from resilience_django.clock import ManualClock
from resilience_django.retrying.budget import (
    MAX_BUDGETS,
    LruRegistry,
    RetryBudget,
    budget_for,
    budgets,
)


def test_retries_are_capped_at_the_ratio_of_calls() -> None:
    budget = RetryBudget(0.2, min_per_second=0, ttl=10, clock=ManualClock())
    for _ in range(100):
        budget.deposit()
    granted = sum(budget.try_withdraw() for _ in range(50))
    assert granted == 20


def test_the_floor_allows_a_few_retries_with_no_traffic() -> None:
    budget = RetryBudget(0.2, min_per_second=1, ttl=10, clock=ManualClock())
    assert sum(budget.try_withdraw() for _ in range(50)) == 10


def test_deposits_expire_after_the_ttl() -> None:
    clock = ManualClock()
    budget = RetryBudget(0.5, min_per_second=0, ttl=10, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert budget.balance() == pytest.approx(5)
    clock.advance(11)
    assert budget.balance() == pytest.approx(0)
    assert not budget.try_withdraw()


def test_withdrawals_expire_too_so_the_budget_refills() -> None:
    clock = ManualClock()
    budget = RetryBudget(0.0, min_per_second=1, ttl=10, clock=clock)
    assert sum(budget.try_withdraw() for _ in range(20)) == 10
    clock.advance(10.5)
    assert budget.try_withdraw()


def test_concurrent_withdrawals_never_overdraw() -> None:
    budget = RetryBudget(0.1, min_per_second=0, ttl=10, clock=ManualClock())
    for _ in range(1000):
        budget.deposit()
    granted: list[bool] = []

    def worker() -> None:
        for _ in range(100):
            granted.append(budget.try_withdraw())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


def test_one_budget_per_target() -> None:
    assert budget_for("test-budget-a") is budget_for("test-budget-a")
    assert budget_for("test-budget-a") is not budget_for("test-budget-b")


def test_fifty_thousand_distinct_targets_keep_at_most_the_bound() -> None:
    try:
        for i in range(50_000):
            budget_for(f"host-{i}.example")
        held = budgets._items
        assert len(held) <= MAX_BUDGETS == 10_000
        assert "host-49999.example" in held and "host-0.example" not in held
    finally:
        budgets._items.clear()


def test_a_recently_used_budget_survives_eviction_with_its_state() -> None:
    registry: LruRegistry[RetryBudget] = LruRegistry(max_size=100)
    hot = registry.get_or_make("pricing", lambda: RetryBudget(0.0, min_per_second=1, ttl=10))
    assert sum(hot.try_withdraw() for _ in range(3)) == 3
    for i in range(1_000):
        registry.get_or_make(f"host-{i}", RetryBudget)
        if i % 50 == 0:
            assert registry.get_or_make("pricing", RetryBudget) is hot  # in use: never evicted
    assert len(registry._items) == 100 and "host-0" not in registry._items
    assert registry.get_or_make("pricing", RetryBudget) is hot
    assert hot.balance() == pytest.approx(7)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryBudget(-0.1)
    with pytest.raises(ValueError):
        RetryBudget(0.2, ttl=0)
    with pytest.raises(ValueError):
        LruRegistry(max_size=0)


def test_a_transport_calling_many_hosts_keeps_at_most_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    import resilience_django
    from resilience_django.integrations.httpx import ResilientTransport

    monkeypatch.setattr(budgets, "max_size", 50)
    transport = ResilientTransport(
        retry=resilience_django.retry(attempts=2, backoff="1ms"),
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    try:
        with httpx.Client(transport=transport) as client:
            for i in range(400):
                assert client.get(f"http://host-{i}.example/").status_code == 200
        assert 0 < len(budgets._items) <= 50 and "host-399.example" in budgets._items
    finally:
        budgets._items.clear()
