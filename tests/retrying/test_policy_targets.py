"""A policy called directly keeps the per-target budgets and throttles of the policies it
binds later (decorators, transports): one target's failures never spend another's retries."""

from __future__ import annotations

import pytest

from resilience_django.retrying.budget import budget_for
from resilience_django.retrying.policy import retry
from resilience_django.retrying.throttle import throttle_for


def _fail() -> None:
    raise ConnectionError("reset")


def test_a_policy_called_directly_still_gives_each_bound_target_its_own_budget() -> None:
    policy = retry(attempts=2, backoff=0, sleep=lambda s: None)
    assert policy.call(lambda: "ok") == "ok"  # used once as it is: its target is "default"
    pricing = policy.for_target("test-targets-pricing")
    inventory = policy.for_target("test-targets-inventory")
    # Pricing fails on and on: each call spends 0.8 of a retry, the floor is 100.
    for _ in range(300):
        with pytest.raises(ConnectionError):
            pricing.call(_fail)
    assert budget_for("test-targets-pricing").balance() < 1
    # Inventory's one hiccup is still retried: its budget is its own.
    attempts: list[int] = []

    def hiccup() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("reset")
        return "ok"

    assert inventory.call(hiccup) == "ok"
    assert len(attempts) == 2
    assert budget_for("test-targets-inventory").balance() == pytest.approx(100 + 0.2 - 1)


def test_a_decorator_applied_after_a_direct_call_budgets_by_function_name() -> None:
    policy = retry(attempts=2, backoff=0, sleep=lambda s: None, throttle=True)
    policy.call(lambda: "ok")

    @policy
    def fetch() -> str:
        return "ok"

    assert fetch() == "ok"
    target = f"{__name__}.{fetch.__qualname__}"
    assert budget_for(target).balance() == pytest.approx(100 + 0.2)
    assert throttle_for(target).totals() == (1, 1)  # its own: one request, accepted
