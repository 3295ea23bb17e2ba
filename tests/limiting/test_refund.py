"""Refunds keep a request's decision all-or-nothing when its rules span two stores."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.clock import ManualClock
from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
from resilience_django.limiting.engine import LimitEngine
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import parse_limit_rule
from resilience_django.units import parse_rate

ALGORITHMS = [Algorithm.SLIDING_WINDOW, Algorithm.TOKEN_BUCKET, Algorithm.GCRA]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_refunded_decision_gives_its_quota_back(algorithm: Algorithm) -> None:
    clock = ManualClock(1000.0)
    store = LocalLimiter(clock=clock)
    policy = Policy("r", parse_rate("3/m"), algorithm)
    check = (LimitCheck(policy, "k"),)
    decisions = [store.decide(check) for _ in range(3)]
    assert all(d.allowed for d in decisions)
    assert not store.decide(check).allowed
    store.refund(decisions[-1])
    clock.advance(0.001)
    assert store.decide(check).allowed
    assert not store.decide(check).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(taken=st.integers(min_value=1, max_value=5), step=st.floats(min_value=0, max_value=30))
def test_refund_never_gives_back_more_than_was_taken(
    algorithm: Algorithm, taken: int, step: float
) -> None:
    clock = ManualClock(1000.0)
    store = LocalLimiter(clock=clock)
    policy = Policy("r", parse_rate("5/m"), algorithm)
    check = (LimitCheck(policy, "k"),)
    decisions = [store.decide(check) for _ in range(taken)]
    clock.advance(step)
    for decision in decisions:
        store.refund(decision)
    admitted = 0
    while store.decide(check).allowed:
        admitted += 1
        assert admitted <= 5  # never more than the quota itself


def _engine(local_rate: str, shared_rate: str) -> tuple[LimitEngine, LocalLimiter, LocalLimiter]:
    local, shared = LocalLimiter(), LocalLimiter()
    rules = [
        parse_limit_rule({"name": "local-a", "rate": local_rate, "key": "ip"}, index=0),
        parse_limit_rule(
            {"name": "shared-b", "rate": shared_rate, "key": "ip", "scope": "distributed"},
            index=1,
        ),
    ]
    # The "distributed" store is a second LocalLimiter: any Limiter works there.
    return LimitEngine(rules, shared, local=local), local, shared


class _Request:
    META = {"REMOTE_ADDR": "10.9.9.9"}


def _left(engine: LimitEngine, local: LocalLimiter) -> int:
    check = (LimitCheck(engine.rules[0].policy, "10.9.9.9"),)
    left = 0
    while local.decide(check).allowed:
        left += 1
    return left


def test_a_request_the_shared_store_rejects_does_not_consume_local_rules() -> None:
    engine, local, _ = _engine("3/m", "1/m")
    assert engine.decide("GET", "/", _Request()).allowed
    for _ in range(5):
        result = engine.decide("GET", "/", _Request())
        assert not result.allowed and result.rejected == ("shared-b",)
    # local-a still has its 2 remaining requests: nothing was taken by the rejections.
    assert _left(engine, local) == 2


async def test_async_decisions_refund_the_same_way() -> None:
    engine, local, _ = _engine("3/m", "1/m")
    assert (await engine.adecide("GET", "/", _Request())).allowed
    for _ in range(5):
        result = await engine.adecide("GET", "/", _Request())
        assert not result.allowed
    assert _left(engine, local) == 2


class _CountingStore(LocalLimiter):
    """A real local store that counts how often the engine asks it (one ask = one round trip)."""

    asks = 0
    inside = False

    def decide_with_shadow(self, checks, shadow):  # type: ignore[no-untyped-def, override]
        type(self).asks += 1
        type(self).inside = True
        try:
            return super().decide_with_shadow(checks, shadow)
        finally:
            type(self).inside = False

    def decide(self, checks, share=1.0):  # type: ignore[no-untyped-def, override]
        if not type(self).inside:  # asked directly by the engine: a round trip of its own
            type(self).asks += 1
        return super().decide(checks, share)


def test_enforced_and_shadow_distributed_rules_cost_one_ask_of_the_shared_store() -> None:
    shared = _CountingStore()
    rules = [
        parse_limit_rule({"name": "local-a", "rate": "10/m", "key": "ip"}, index=0),
        parse_limit_rule(
            {"name": "shared-b", "rate": "10/m", "key": "ip", "scope": "distributed"}, index=1
        ),
        parse_limit_rule(
            {
                "name": "shared-shadow",
                "rate": "1/m",
                "key": "ip",
                "scope": "distributed",
                "mode": "shadow",
            },
            index=2,
        ),
    ]
    engine = LimitEngine(rules, shared, local=LocalLimiter())
    _CountingStore.asks = 0
    for _ in range(3):
        result = engine.decide("GET", "/", _Request())
        assert result.allowed
    assert _CountingStore.asks == 3  # one per request: enforced and shadow together
    assert result.shadow_rejected == ("shared-shadow",)
