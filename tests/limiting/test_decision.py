from __future__ import annotations

from resilience_django.limiting.decision import Decision, LimitCheck, Policy, RuleOutcome
from resilience_django.units import parse_rate

POLICY = Policy("p", parse_rate("10/s"))


def test_answer_objects_compare_by_value_and_hash_alike() -> None:
    a = RuleOutcome(LimitCheck(POLICY, "k"), False, 0, 1.5, 2.5)
    b = RuleOutcome(LimitCheck(POLICY, "k", 1), False, 0, 1.5, 2.5)
    assert a == b and hash(a) == hash(b)
    assert a != RuleOutcome(LimitCheck(POLICY, "k"), True, 0, 1.5, 2.5)
    assert a != (LimitCheck(POLICY, "k"), False, 0, 1.5, 2.5)


def test_decision_reports_the_longest_wait_of_its_rejections() -> None:
    ok = RuleOutcome(LimitCheck(POLICY, "a"), True, 3, 1.0, 0.0)
    no = RuleOutcome(LimitCheck(POLICY, "b"), False, 0, 4.0, 4.0)
    decision = Decision(False, (ok, no))
    assert decision.retry_after == 4.0
    assert "allowed=False" in repr(decision)


def test_answer_objects_have_no_instance_dict() -> None:
    check = LimitCheck(POLICY, "k")
    assert not hasattr(check, "__dict__")


def test_answer_objects_defer_to_other_kinds_of_object_and_survive_pickling() -> None:
    import pickle
    from unittest import mock

    decision = Decision(True, (RuleOutcome(LimitCheck(POLICY, "k"), True, 9, 0.1, 0.0),))
    assert decision == mock.ANY  # not a tuple: the other side decides
    assert decision != (True, decision.outcomes, "local")  # a bare tuple is not an answer
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert decision.outcomes[0].check.policy is POLICY
