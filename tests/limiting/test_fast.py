"""The hot-path constructors build the very same frozen objects."""

from __future__ import annotations

import dataclasses

import pytest

from resilience_django.limiting._fast import (
    _fast_constructor,
    make_check,
    make_decision,
    make_outcome,
)
from resilience_django.limiting.decision import Decision, LimitCheck, Policy, RuleOutcome
from resilience_django.units import Rate

POLICY = Policy("p", Rate(1, 1.0))


def test_fast_objects_equal_regular_ones_and_stay_frozen():
    check = make_check(POLICY, "k", 1)
    outcome = make_outcome(check, False, 0, 1.5, 2.5)
    decision = make_decision(False, (outcome,), "local")
    assert type(check) is LimitCheck and check == LimitCheck(POLICY, "k", 1)
    assert type(outcome) is RuleOutcome and outcome == RuleOutcome(check, False, 0, 1.5, 2.5)
    assert type(decision) is Decision and decision == Decision(False, (outcome,), "local")
    assert hash(check) == hash(LimitCheck(POLICY, "k", 1))
    assert decision.rejected_by == (outcome,) and decision.retry_after == 2.5
    assert dataclasses.replace(decision, backend="redis").backend == "redis"
    for obj, field in ((check, "key"), (outcome, "allowed"), (decision, "allowed")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)


def test_descriptor_fallback_builds_the_same_objects():
    make = _fast_constructor(RuleOutcome, tuple(f.name for f in dataclasses.fields(RuleOutcome)))
    check = LimitCheck(POLICY, "k")
    assert make(check, True, 1, 0.5, 0.0) == RuleOutcome(check, True, 1, 0.5, 0.0)
    assert _fast_constructor(RuleOutcome, ("other",)) is None
