"""The route-budget memo stays small whatever request lines clients send: h11 (uvicorn's
pure-Python parser) takes any token as a method, up to its 16 KB line limit."""

from __future__ import annotations

import gc
import tracemalloc

from resilience_django.deadline_policy import DeadlinePolicy, DeadlineSettings


def test_huge_invented_methods_do_not_grow_the_route_budget_memo() -> None:
    policy = DeadlinePolicy(DeadlineSettings())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):
            # A fresh string per request, as a server makes it: only the memo can keep it.
            deadline = policy.start(f"M{i:05d}" + "X" * 10_000, "/api/", {}, 0.0)
            assert deadline is not None and deadline.budget == 30.0
        del deadline
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # docs: "about 0.3 MB" however many paths; 1024 remembered 10 KB methods would be 10 MB.
    assert grown < 1_000_000, grown
