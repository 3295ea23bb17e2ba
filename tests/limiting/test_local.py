"""The in-process store: all-or-nothing, bounded LRU, thread safety, share."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest

from resilience_django.clock import ManualClock
from resilience_django.limiting.decision import Algorithm, Decision, LimitCheck, Policy
from resilience_django.limiting.local import LocalLimiter
from resilience_django.units import Rate


def policy(name="p", limit=3, period=60.0, algorithm=Algorithm.SLIDING_WINDOW, burst=None):
    return Policy(name, Rate(limit, period), algorithm, burst)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_one_check_admits_limit_then_rejects_with_outcome(algorithm):
    limiter = LocalLimiter(clock=ManualClock())
    check = LimitCheck(policy(algorithm=algorithm), "1.2.3.4")
    decisions = [limiter.decide((check,)) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    last = decisions[-1]
    assert isinstance(last, Decision) and last.backend == "local"
    assert last.outcomes[0].check is check
    assert not last.outcomes[0].allowed
    assert last.retry_after > 0
    assert decisions[0].outcomes[0].remaining == 2


async def test_adecide_shares_state_with_decide():
    limiter = LocalLimiter(clock=ManualClock())
    check = LimitCheck(policy(limit=2), "k")
    assert limiter.decide((check,)).allowed
    assert (await limiter.adecide((check,))).allowed
    assert not (await limiter.adecide((check,))).allowed


def test_rejection_by_rule_b_does_not_consume_rule_a():
    limiter = LocalLimiter(clock=ManualClock())
    a = LimitCheck(policy("a", limit=5), "k")
    b = LimitCheck(policy("b", limit=1), "k")
    assert limiter.decide((a, b)).allowed
    rejected = limiter.decide((a, b))
    assert not rejected.allowed
    assert [o.allowed for o in rejected.outcomes] == [True, False]
    assert rejected.outcomes[0].allowed and rejected.outcomes[0].remaining == 4
    # a was used once only: four more fit on their own.
    assert [limiter.decide((a,)).allowed for _ in range(5)] == [True] * 4 + [False]


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_failed_multi_check_restores_every_state_exactly(algorithm):
    clock = ManualClock(100.0)
    limiter = LocalLimiter(clock=clock)
    a = LimitCheck(policy("a", limit=10, algorithm=algorithm), "k")
    b = LimitCheck(policy("b", limit=1, algorithm=algorithm), "k")
    limiter.decide((b,))
    for _ in range(30):
        clock.advance(0.01)
        assert not limiter.decide((a, b)).allowed
    assert [limiter.decide((a,)).allowed for _ in range(11)] == [True] * 10 + [False]


def test_a_check_listed_twice_counts_twice():
    limiter = LocalLimiter(clock=ManualClock())
    check = LimitCheck(policy(limit=3), "k")
    assert limiter.decide((check, check)).allowed
    assert not limiter.decide((check, check)).allowed
    assert limiter.decide((check,)).allowed
    assert not limiter.decide((check,)).allowed


def test_empty_checks_allow():
    assert LocalLimiter().decide(()).allowed


def test_keys_and_policies_are_independent():
    limiter = LocalLimiter(clock=ManualClock())
    p, q = policy("p", limit=1), policy("q", limit=1)
    assert limiter.decide((LimitCheck(p, "x"),)).allowed
    assert limiter.decide((LimitCheck(p, "y"),)).allowed
    assert limiter.decide((LimitCheck(q, "x"),)).allowed
    assert not limiter.decide((LimitCheck(p, "x"),)).allowed


def test_share_enforces_a_fraction_of_the_limit_on_the_same_state():
    limiter = LocalLimiter(clock=ManualClock())
    check = LimitCheck(policy(limit=10), "k")
    assert [limiter.decide((check,), share=0.25).allowed for _ in range(3)] == [True, True, False]
    # Back to the whole limit: the two already admitted still count.
    assert sum(limiter.decide((check,)).allowed for _ in range(10)) == 8


def test_policy_edited_to_another_algorithm_starts_fresh():
    limiter = LocalLimiter(clock=ManualClock())
    old = LimitCheck(policy("r", limit=1), "k")
    new = LimitCheck(policy("r", limit=1, algorithm=Algorithm.GCRA), "k")
    assert limiter.decide((old,)).allowed
    assert limiter.decide((new,)).allowed


def test_store_stays_bounded_under_a_million_distinct_keys():
    limiter = LocalLimiter(max_keys=5_000, clock=ManualClock())
    p = policy(limit=1)
    decide = limiter.decide
    for i in range(1_000_000):
        decide((LimitCheck(p, str(i)),))
    assert len(limiter) <= 5_000
    assert len(limiter) > 4_000  # the shards are nearly full, not emptied
    # The most recent key is still there and limited; the oldest was evicted.
    assert not decide((LimitCheck(p, "999999"),)).allowed
    assert decide((LimitCheck(p, "0"),)).allowed


def test_least_recently_used_key_is_evicted_first():
    limiter = LocalLimiter(max_keys=3, clock=ManualClock())
    p = policy(limit=1)
    for key in ("a", "b", "c"):
        limiter.decide((LimitCheck(p, key),))
    limiter.decide((LimitCheck(p, "a"),))  # a is now most recent
    limiter.decide((LimitCheck(p, "d"),))  # evicts b
    assert not limiter.decide((LimitCheck(p, "a"),)).allowed
    assert not limiter.decide((LimitCheck(p, "c"),)).allowed
    assert limiter.decide((LimitCheck(p, "b"),)).allowed


@pytest.mark.parametrize(
    ("algorithm", "ceiling"),
    [(Algorithm.SLIDING_WINDOW, 450), (Algorithm.TOKEN_BUCKET, 350), (Algorithm.GCRA, 350)],
)
def test_memory_per_key_stays_under_the_documented_figure(algorithm, ceiling):
    n = 20_000
    p = policy(algorithm=algorithm)
    checks = [(LimitCheck(p, f"203.0.{i // 256}.{i % 256}"),) for i in range(n)]
    limiter = LocalLimiter(max_keys=4 * n, clock=ManualClock())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for c in checks:
            limiter.decide(c)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The key strings were allocated before, as a request's would be; the
    # limiter keeps them alive, so count them too.
    per_key = (after - before) / n + sum(len(c[0].key) + 49 for c in checks) / n
    assert len(limiter) == n
    print(f"{algorithm}: {per_key:.0f} bytes per key")
    assert per_key < ceiling, per_key


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_threads_hammering_one_key_admit_exactly_the_limit(algorithm):
    limiter = LocalLimiter(clock=ManualClock(1e6))
    check = (LimitCheck(policy(limit=1000, algorithm=algorithm), "hot"),)
    admitted = []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        admitted.append(sum(limiter.decide(check).allowed for _ in range(500)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 1000


def test_concurrent_multi_key_decisions_in_opposite_orders_do_not_deadlock():
    limiter = LocalLimiter(max_keys=10_000, clock=ManualClock())
    pa, pb = policy("a", limit=10**9), policy("b", limit=10**9)
    forward = (*(LimitCheck(pa, str(i)) for i in range(6)), LimitCheck(pb, "x"))
    backward = tuple(reversed(forward))

    def worker(checks):
        for _ in range(2000):
            limiter.decide(checks)

    threads = [threading.Thread(target=worker, args=(c,)) for c in (forward, backward) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert limiter.decide((LimitCheck(pb, "x"),)).outcomes[0].remaining == 10**9 - 8001


def test_clear_forgets_every_key():
    limiter = LocalLimiter(clock=ManualClock())
    check = LimitCheck(policy(limit=2), "k")
    assert [limiter.decide((check,)).allowed for _ in range(3)] == [True, True, False]
    limiter.clear()
    assert len(limiter) == 0
    assert limiter.decide((check,)).allowed


def test_max_keys_must_be_positive():
    with pytest.raises(ValueError):
        LocalLimiter(max_keys=0)


async def test_the_event_loop_and_a_thread_share_one_count():
    limiter = LocalLimiter(clock=ManualClock())
    check = (LimitCheck(policy(limit=10), "k"),)
    for _ in range(3):
        assert (await limiter.adecide(check)).allowed
    worker = threading.Thread(target=limiter.decide, args=(check,))
    worker.start()
    worker.join()
    assert sum([(await limiter.adecide(check)).allowed for _ in range(10)]) == 6


async def test_loop_and_threads_deciding_together_admit_exactly_the_limit():
    import asyncio

    limiter = LocalLimiter(clock=ManualClock())
    check = (LimitCheck(policy(limit=3000), "hot"),)
    admitted = []
    start = threading.Barrier(4)

    def worker():
        start.wait()
        admitted.append(sum(limiter.decide(check).allowed for _ in range(1000)))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    start.wait()
    on_loop = 0
    for i in range(1000):
        on_loop += (await limiter.adecide(check)).allowed
        if i % 50 == 0:
            await asyncio.sleep(0)
    for t in threads:
        t.join()
    assert on_loop + sum(admitted) == 3000


def test_memory_stays_bounded_while_keys_churn_twenty_times_past_max_keys():
    p = policy(limit=1)
    limiter = LocalLimiter(max_keys=2_000, clock=ManualClock())
    decide = limiter.decide
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(40_000):
            decide((LimitCheck(p, f"198.18.{i >> 8 & 255}.{i & 255}-{i >> 16}"),))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(limiter) <= 2_000
    # 2,000 keys at well under 600 bytes each, whatever the 38,000 evicted.
    assert held < 2_000 * 600, held


def test_threads_wait_out_a_multi_check_decision_in_flight_on_the_event_loop():
    """No thread decides beside the loop's two-check decision while it is in flight.

    The loop's decision is paused after its snapshot (a property on the check
    stands in for a switch of threads).  Had a thread decided meanwhile, the
    loop's rejected decision would restore its snapshot over that thread's
    admission, and one admission would go uncounted.
    """
    import asyncio

    paused, resume = threading.Event(), threading.Event()
    wide = Policy("wide", Rate(1000, 3600.0))
    narrow = Policy("narrow", Rate(1, 3600.0))

    class PausingCheck(LimitCheck):
        __slots__ = ("_reads",)

        def __init__(self, policy, key):
            super().__init__(policy, key)
            self._reads = 0

        @property
        def cost(self):
            self._reads += 1
            if self._reads == 2:  # in consume(), after the snapshot was taken
                paused.set()
                resume.wait(10)
            return 1

        @cost.setter
        def cost(self, value):
            pass

    limiter = LocalLimiter(max_keys=64)  # one shard
    results = {}

    async def decide_on_the_loop():
        await limiter.adecide((LimitCheck(narrow, "k"),))  # narrow is now full
        decision = await limiter.adecide((PausingCheck(wide, "k"), LimitCheck(narrow, "k")))
        results["loop"] = decision.allowed

    def loop():
        asyncio.run(decide_on_the_loop())

    def other(name):
        results[name] = limiter.decide((LimitCheck(wide, "k"),)).allowed

    loop_thread = threading.Thread(target=loop)
    loop_thread.start()
    assert paused.wait(10)
    first = threading.Thread(target=other, args=("first",))
    second = threading.Thread(target=other, args=("second",))
    first.start()
    second.start()
    first.join(0.2)
    second.join(0.2)
    assert first.is_alive(), "a thread decided beside the loop's decision"
    assert second.is_alive(), "a thread decided beside the loop's decision"
    resume.set()
    for thread in (loop_thread, first, second):
        thread.join(10)
    assert results == {"loop": False, "first": True, "second": True}
    remaining = limiter.decide((LimitCheck(wide, "k"),)).outcomes[0].remaining
    assert 1000 - remaining == 3  # first, second and this one: none lost


def test_threads_mixing_one_and_two_check_decisions_on_one_shard_lose_no_update():
    limiter = LocalLimiter(max_keys=64)  # one shard: every thread meets on the same lock
    policy = Policy("p", Rate(10**9, 3600.0), Algorithm.SLIDING_WINDOW)
    one = (LimitCheck(policy, "k"),)
    two = (LimitCheck(policy, "k"), LimitCheck(Policy("q", Rate(10**9, 3600.0)), "k"))

    def hammer():
        for i in range(4000):
            limiter.decide(two if i % 10 == 0 else one)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    remaining = limiter.decide(one).outcomes[0].remaining
    assert 10**9 - remaining == 4 * 4000 + 1  # every decision counted once


def test_the_compiled_policy_cache_never_mixes_limiters_or_rules():
    first, second = LocalLimiter(), LocalLimiter()
    two = Policy("two", Rate(2, 60.0))
    three = Policy("three", Rate(3, 60.0), Algorithm.GCRA)
    got = {}
    for _ in range(4):  # limiters and rules alternate on every call
        for limiter in (first, second):
            for p in (two, three):
                decision = limiter.decide((LimitCheck(p, "k"),))
                got.setdefault((id(limiter), p.name), []).append(decision.allowed)
    for limiter in (first, second):
        assert got[(id(limiter), "two")] == [True, True, False, False]
        assert got[(id(limiter), "three")] == [True, True, True, False]
    # A rule edited live (a new Policy, same name, algorithm and period) keeps its
    # counts under its new limit: the cache must not answer with the old kernel.
    again = Policy("two", Rate(5, 60.0))
    assert first.decide((LimitCheck(again, "k"),)).outcomes[0].remaining == 5 - 3


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_admit_and_decide_share_one_count(algorithm):
    limiter = LocalLimiter(clock=ManualClock())
    p = policy(limit=3, algorithm=algorithm)
    assert limiter.admit(p, "k")
    assert limiter.decide((LimitCheck(p, "k"),)).outcomes[0].remaining == 1
    assert limiter.admit(p, "k", cost=1)
    assert not limiter.admit(p, "k")
    assert not limiter.decide((LimitCheck(p, "k"),)).allowed
