"""The C kernels give the pure-Python kernels' answers, to the last bit.

``algorithms.py`` is the reference.  Each test drives a C kernel and the
Python kernel of the same policy through the same random sequence of calls and
compares every answer and every state list exactly (``==`` on floats, not
``approx``): the headers a client sees must not depend on whether the package
was built with a compiler.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience_django.limiting import local
from resilience_django.limiting.algorithms import Gcra, SlidingWindow, TokenBucket, kernel_for
from resilience_django.limiting.decision import Algorithm, Decision, LimitCheck, Policy
from resilience_django.limiting.speedups import speedups
from resilience_django.units import Rate
from tests.services import missing

PURE = (SlidingWindow, TokenBucket, Gcra)


@pytest.fixture(autouse=True)
def _built() -> None:
    if os.environ.get("RESILIENCE_PURE_PYTHON"):
        pytest.skip("RESILIENCE_PURE_PYTHON is set: this run tests the pure-Python kernels")
    if speedups is None:
        missing("the C kernels are not built (no C compiler when the package was installed)")


policies = st.builds(
    Policy,
    name=st.just("p"),
    rate=st.builds(
        Rate,
        limit=st.integers(1, 50),
        # Integer periods too: Rate(5, 60) is as valid as Rate(5, 60.0).
        period=st.sampled_from([0.5, 1.0, 3.0, 10.0, 60.0, 86400.0, 1, 60]),
    ),
    algorithm=st.sampled_from(list(Algorithm)),
    burst=st.one_of(st.none(), st.integers(1, 80)),
)
# Steps of the clock, some backwards (a clock may be stepped), some across many windows.
steps = st.lists(
    st.tuples(
        st.sampled_from(["outcome", "acquire", "multi", "refund", "info"]),
        st.one_of(
            st.floats(0.0, 0.3),
            st.floats(-0.5, 0.0),
            st.floats(0.0, 200.0),
            st.just(0.0),
        ),
        st.integers(1, 6),
    ),
    max_size=60,
)


def _exact(value: object) -> tuple[type, str]:
    """A value as ``==`` does not see it: its type and repr (so 60 != 60.0, -0.0 != 0.0)."""
    return type(value), repr(value)


def _same_outcome(a: object, b: object) -> None:
    fields = ("allowed", "remaining", "reset_after", "retry_after")
    assert [_exact(getattr(a, f)) for f in fields] == [_exact(getattr(b, f)) for f in fields]


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    share=st.sampled_from([1.0, 0.5, 0.34]),
    start=st.floats(0.0, 1e6),
    script=steps,
)
def test_c_and_python_kernels_agree_on_every_answer_and_state(
    policy: Policy, share: float, start: float, script: list[tuple[str, float, int]]
) -> None:
    native = kernel_for(policy, share)
    pure = kernel_for(policy, share, PURE)
    assert type(native) is not type(pure)
    assert native.tag == pure.tag
    now = start
    s_native, s_pure = native.new_state(now), pure.new_state(now)
    assert list(map(_exact, s_native)) == list(map(_exact, s_pure))
    for op, step, cost in script:
        now += step
        check = LimitCheck(policy, "k", cost)
        if op == "outcome":
            _same_outcome(native.outcome(s_native, now, check), pure.outcome(s_pure, now, check))
        elif op == "acquire":
            assert native.acquire(s_native, now, cost) == pure.acquire(s_pure, now, cost)
        elif op == "multi":  # the steps a multi-rule decision takes (Python on both)
            native.advance(s_native, now)
            pure.advance(s_pure, now)
            fits = native.fits(s_native, now, cost)
            assert fits == pure.fits(s_pure, now, cost)
            if fits:
                native.consume(s_native, now, cost)
                pure.consume(s_pure, now, cost)
        elif op == "refund":
            native.refund(s_native, now, cost)
            pure.refund(s_pure, now, cost)
        else:
            got = native.info(s_native, now, cost, False)
            assert list(map(_exact, got)) == list(map(_exact, pure.info(s_pure, now, cost, False)))
        assert list(map(_exact, s_native)) == list(map(_exact, s_pure)), (op, now)


@settings(max_examples=100, deadline=None)
@given(
    policy=policies,
    keys=st.lists(st.sampled_from("abcdefgh"), max_size=80),
    capacity=st.integers(1, 5),
)
def test_the_c_store_step_keeps_the_same_lru_as_the_python_one(
    policy: Policy, keys: list[str], capacity: int
) -> None:
    kernel = kernel_for(policy)
    native_states: OrderedDict[tuple[str, str], list[object]] = OrderedDict()
    pure_states: OrderedDict[tuple[str, str], list[object]] = OrderedDict()
    for i, key in enumerate(keys):
        now = i * 0.01
        check = LimitCheck(policy, key)
        store_key = ("p", key)
        if i % 3 == 0:
            assert speedups.admit_one(
                native_states, capacity, store_key, kernel, now, 1
            ) == local._py_admit_one(pure_states, capacity, store_key, kernel, now, 1)
        else:
            native = speedups.decide_one(native_states, capacity, store_key, kernel, now, check)
            pure = local._py_decide_one(pure_states, capacity, store_key, kernel, now, check)
            assert isinstance(native, Decision)
            assert native == pure
            assert native.outcomes[0].check is check
        # Same keys, same order (least recently used first), same states.
        assert list(native_states.items()) == list(pure_states.items())
        assert len(native_states) <= capacity


def test_answer_objects_compare_pickle_and_stay_read_only() -> None:
    policy = Policy("p", Rate(1, 60.0))
    kernel = kernel_for(policy)
    state = kernel.new_state(0.0)
    first = speedups.decide_one(OrderedDict(), 10, ("p", "k"), kernel, 0.0, LimitCheck(policy, "k"))
    assert first.allowed is True and first.backend == "local"
    assert first.retry_after == 0.0 and first.rejected_by == ()
    rejected = kernel.outcome(state, 0.0, LimitCheck(policy, "k"))
    rejected = kernel.outcome(state, 0.0, LimitCheck(policy, "k"))
    assert rejected.allowed is False and rejected.retry_after > 0
    decision = Decision(False, (rejected,))
    assert decision.rejected_by == (rejected,)
    assert decision.retry_after == rejected.retry_after
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert "allowed=False" in repr(decision)
    with pytest.raises(AttributeError):
        decision.allowed = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rejected.remaining = 5  # type: ignore[misc]


def test_register_refuses_classes_the_kernels_cannot_fill() -> None:
    class Wider(speedups.Outcome):  # type: ignore[misc]
        __slots__ = ("extra",)

    with pytest.raises(TypeError, match="no slots"):
        speedups.register(Wider, Decision)
    with pytest.raises(TypeError, match="must subclass"):
        speedups.register(dict, Decision)


def test_a_malformed_state_is_a_type_error_not_a_crash() -> None:
    kernel = kernel_for(Policy("p", Rate(5, 1.0)))
    with pytest.raises(TypeError, match="state must be a list"):
        kernel.acquire([0], 1.0, 1)
    with pytest.raises(TypeError):
        kernel.outcome(kernel.new_state(0.0), "now", LimitCheck(Policy("p", Rate(5, 1.0)), "k"))
    import threading

    from resilience_django.limiting.local import LocalLimiter

    limiter = LocalLimiter(max_keys=64)
    policy = Policy("p", Rate(5, 1.0))
    limiter.decide((LimitCheck(policy, "k"),))  # compiled
    foreign = tuple(
        (states, capacity, threading.Lock()) for states, capacity, _ in limiter._plain_shards
    )
    with pytest.raises(TypeError, match="ShardLock"):
        speedups.decide_single(
            foreign, limiter._mask, limiter._compiled, LimitCheck(policy, "k"), 0.0, True
        )
    with pytest.raises(TypeError, match="OrderedDict"):
        speedups.decide_one(
            [], 1, ("p", "k"), kernel, 0.0, LimitCheck(Policy("p", Rate(5, 1.0)), "k")
        )


@pytest.mark.parametrize("algorithm", [Algorithm.TOKEN_BUCKET, Algorithm.GCRA])
@pytest.mark.parametrize("use_outcome", [False, True])
def test_a_burst_at_one_instant_admits_exactly_the_capacity_despite_rounding(
    algorithm: Algorithm, use_outcome: bool
) -> None:
    # Periods and limits whose emission interval is not a binary fraction: the
    # sums of intervals round above the tolerance unless the slack is applied.
    for limit in (3, 7, 10, 13, 49):
        for period in (0.3, 1.0, 7.0, 60.0):
            policy = Policy("p", Rate(limit, period), algorithm)
            for kernels in (None, PURE):
                kernel = kernel_for(policy, 1.0, kernels)
                state = kernel.new_state(1000.1)
                check = LimitCheck(policy, "k")
                admitted = sum(
                    (kernel.outcome(state, 1000.1, check).allowed if use_outcome
                     else kernel.acquire(state, 1000.1, 1))
                    for _ in range(limit + 2)
                )  # fmt: skip
                assert admitted == limit, (limit, period, kernels)


def test_the_shard_lock_excludes_other_threads_and_refuses_a_release_it_does_not_hold() -> None:
    import threading

    lock = speedups.ShardLock()
    assert not lock.locked()
    with lock:
        assert lock.locked()
        got: list[float] = []

        def waiter() -> None:
            with lock:  # waits, without the GIL, until the main thread lets go
                got.append(time.monotonic())

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(0.2)
        assert thread.is_alive() and got == []
        released = time.monotonic()
    thread.join(5)
    assert got and got[0] >= released
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()


def test_threads_deciding_on_one_shard_through_the_c_lock_lose_no_update() -> None:
    import threading

    from resilience_django.limiting.local import LocalLimiter

    limiter = LocalLimiter(max_keys=64)  # one shard: every thread meets on the same lock
    assert isinstance(limiter._shards[0].lock, speedups.ShardLock)
    policy = Policy("p", Rate(10**9, 3600.0), Algorithm.SLIDING_WINDOW)
    checks = (LimitCheck(policy, "k"),)
    two = (LimitCheck(policy, "k"), LimitCheck(Policy("q", Rate(10**9, 3600.0)), "k"))

    def hammer() -> None:
        for i in range(4000):
            limiter.decide(two if i % 10 == 0 else checks)  # the Python multi path too

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    remaining = limiter.decide(checks).outcomes[0].remaining
    assert 10**9 - remaining == 4 * 4000 + 1  # every decision counted once


def test_inputs_python_would_misread_are_clear_errors_in_c() -> None:
    sliding = kernel_for(Policy("p", Rate(5, 60.0)))
    state = sliding.new_state(0.0)
    # A cost near 2**63 must not overflow into an admission.
    assert sliding.acquire(state, 0.0, 1)
    assert not sliding.acquire(state, 0.0, 2**63 - 1)
    assert state[1] == 1
    with pytest.raises(ValueError, match="negative"):
        sliding.acquire(state, 0.0, -1)
    with pytest.raises(OverflowError):
        sliding.new_state(float("nan"))
    with pytest.raises(OverflowError):
        sliding.acquire(state, float("inf"), 1)
    # The zeros new states start from cannot be changed from Python.
    assert isinstance(sliding._zeros, tuple)


def test_a_sub_interpreter_runs_the_python_kernels_and_leaves_ours_alone() -> None:
    """mod_wsgi runs each application in a sub-interpreter by default.

    The C module's state is one per process: a sub-interpreter that registered
    its own answer classes would change what every other interpreter gets.
    """
    interpreters = pytest.importorskip(
        "_xxsubinterpreters" if sys.version_info < (3, 13) else "_interpreters",
        reason="no sub-interpreter module in this Python",
    )
    from resilience_django.limiting.local import LocalLimiter

    policy = Policy("p", Rate(5, 1.0))
    limiter = LocalLimiter()
    before = type(limiter.decide((LimitCheck(policy, "k"),)))
    interp = interpreters.create()
    try:
        code = (
            f"import sys; sys.path[:0] = {sys.path!r}\n"
            "from resilience_django.limiting.speedups import speedups\n"
            "assert speedups is None, 'a sub-interpreter must not use the C kernels'\n"
            "import resilience_django.limiting.decision\n"
        )
        assert interpreters.run_string(interp, code) is None
    finally:
        interpreters.destroy(interp)
    after = limiter.decide((LimitCheck(policy, "k"),))
    assert type(after) is before is Decision
    assert "allowed=True" in repr(after)


def test_the_cached_compiled_policy_never_mixes_limiters_or_rules() -> None:
    from resilience_django.limiting.local import LocalLimiter

    first, second = LocalLimiter(), LocalLimiter()
    two = Policy("two", Rate(2, 60.0))
    three = Policy("three", Rate(3, 60.0), Algorithm.GCRA)
    got: dict[tuple[int, str], list[bool]] = {}
    for _ in range(4):  # limiters and rules alternate on every call
        for limiter in (first, second):
            for policy in (two, three):
                decision = limiter.decide((LimitCheck(policy, "k"),))
                got.setdefault((id(limiter), policy.name), []).append(decision.allowed)
    for limiter in (first, second):
        assert got[(id(limiter), "two")] == [True, True, False, False]
        assert got[(id(limiter), "three")] == [True, True, True, False]
    # A rule edited live (a new Policy, same name, algorithm and period) keeps its
    # counts under its new limit: the cache must not answer with the old kernel.
    again = Policy("two", Rate(5, 60.0))
    assert first.decide((LimitCheck(again, "k"),)).outcomes[0].remaining == 5 - 3
