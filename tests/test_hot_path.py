"""The per-request fast paths (#15) answer exactly as the general ones do.

``DeadlinePolicy.start_scope`` reads an ASGI scope's raw headers in one pass;
``LimitEngine.decide_scope_now`` decides a scope without a coroutine when the
engine is ``loop_safe``; a ``Deadline`` binds the process clock when built.
"""

from __future__ import annotations

import pytest

from resilience_django import clock as clock_module
from resilience_django.clock import ManualClock, set_clock
from resilience_django.deadline import Deadline
from resilience_django.deadline_policy import DeadlinePolicy, DeadlineSettings, RouteBudget
from resilience_django.limiting.engine import LimitEngine
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import parse_limit_rules
from resilience_django.routes import RouteMatcher


def _policy() -> DeadlinePolicy:
    return DeadlinePolicy(
        DeadlineSettings(
            default=30.0,
            routes=(RouteBudget(RouteMatcher(prefix="/api/orders"), 0.8, "/api/orders"),),
        )
    )


def test_scope_headers_choose_the_same_budget_as_meta_headers() -> None:
    policy = _policy()
    raw = [(b"host", b"x"), (b"x-timeout-ms", b"150"), (b"grpc-timeout", b"100m")]
    dl = policy.start_scope("POST", "/api/orders/1", raw, 5.0)
    assert dl is not None and dl.budget == pytest.approx(0.1) and dl.route == "/api/orders"
    assert dl.started_at == 5.0
    dl = policy.start_scope("GET", "/other", [(b"host", b"x")], 5.0)
    assert dl is not None and dl.budget == 30.0 and dl.route == "default"


def test_tightest_of_a_repeated_scope_header_counts() -> None:
    raw = [(b"x-timeout-ms", b"200"), (b"x-timeout-ms", b"50")]
    dl = _policy().start_scope("GET", "/", raw, 0.0)
    assert dl is not None and dl.budget == pytest.approx(0.05)


def test_malformed_scope_header_is_ignored() -> None:
    dl = _policy().start_scope("GET", "/", [(b"grpc-timeout", b"soon")], 0.0)
    assert dl is not None and dl.budget == 30.0


def _engine(*specs: dict[str, object], local: LocalLimiter | None = None) -> LimitEngine:
    rules, errors = parse_limit_rules(list(specs))
    assert not errors
    return LimitEngine(rules, LocalLimiter(clock=ManualClock()), local=local)


def test_local_engine_with_ip_keys_is_loop_safe_and_a_split_one_is_not() -> None:
    spec = {"name": "ip", "path": "/api/", "key": "ip", "rate": "2/m"}
    assert _engine(spec).loop_safe
    assert not _engine(spec, local=LocalLimiter(clock=ManualClock())).loop_safe


async def test_scope_decided_now_counts_like_the_coroutine() -> None:
    engine = _engine({"name": "ip", "path": "/api/", "key": "ip", "rate": "2/m"})
    scope = {"type": "http", "method": "get", "path": "/api/x", "client": ("192.0.2.1", 1)}
    first = engine.decide_scope_now(scope, "GET", "/api/x")
    second = await engine.decide_scope(scope)
    third = engine.decide_scope_now(scope, "GET", "/api/x")
    assert first is not None and second is not None and third is not None
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.rejected == ("ip",)


def test_deadline_follows_the_clock_installed_when_it_was_built() -> None:
    clock = ManualClock(100.0)
    previous = set_clock(clock)
    try:
        dl = Deadline(1.0)
        assert dl.started_at == 100.0
        clock.advance(1.0)
        assert dl.expired()
    finally:
        set_clock(previous)
    assert clock_module.source is previous


def test_route_budgets_are_memoized_within_a_bound_whatever_paths_clients_send() -> None:
    policy = _policy()
    for i in range(5000):
        dl = policy.start("GET", f"/api/orders/{i}", {}, 0.0)
        assert dl is not None and dl.route == "/api/orders"
    dl = policy.start("GET", "/api/orders/" + "x" * 10_000, {}, 0.0)
    assert dl is not None and dl.budget == 0.8
    assert 0 < len(policy._budgets) <= 1024
    assert all(len(path) <= 128 for _, path in policy._budgets)
