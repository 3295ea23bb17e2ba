"""Limit rules among thousands: the same rules match, in the same order, and few are tried.

Matching walks an index by path prefix (``routes.RouteIndex``), so ten
thousand admin rules on other paths neither change a decision nor make
every request try them.  How few are tried is asserted by counting the
matchers consulted, not by timing (``benchmarks/bench_rule_matching.py``
has the figures).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.test import RequestFactory

from resilience_django.clock import ManualClock
from resilience_django.limiting.engine import LimitEngine
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import LimitRule, parse_limit_rules
from resilience_django.routes import RouteMatcher

rf = RequestFactory()

SPECS: list[dict[str, Any]] = [
    {"name": "orders", "path": "/api/orders", "rate": "5/m"},
    {"name": "regex", "path": r"^/api/\d+", "rate": "5/m"},
    {"name": "api", "path": "/api/", "rate": "5/m"},
    {"name": "all", "rate": "50/m"},
    {"name": "posts", "path": "/api/", "methods": ["POST"], "rate": "5/m"},
]
NOISE = [{"name": f"tenant-{i}", "path": f"/tenant/{i}/", "rate": "1/m"} for i in range(10_000)]
PATHS = ["/api/orders/1", "/api/ordersX", "/api/12", "/api/x", "/", "/tenant/", "/apix"]


class CountingMatcher(RouteMatcher):
    """A RouteMatcher that counts how often it is consulted."""

    calls: list[str] = []  # one tally for every instance, on purpose

    def matches(self, method: str, path: str, view_name: str | None = None) -> bool:
        CountingMatcher.calls.append(path)
        return RouteMatcher.matches(self, method, path, view_name)


def counted(rule: LimitRule) -> LimitRule:
    m = rule.matcher
    matcher = CountingMatcher(prefix=m.prefix, regex=m.regex, view=m.view, methods=m.methods)
    return replace(rule, matcher=matcher)


def engine(specs: list[dict[str, Any]]) -> LimitEngine:
    rules, errors = parse_limit_rules(specs)
    assert not errors
    return LimitEngine(rules, LocalLimiter(clock=ManualClock()))


def outcome_names(result: Any) -> list[str]:
    return [o.check.policy.name for o in result.decision.outcomes]


def test_ten_thousand_non_matching_prefix_rules_do_not_change_which_rules_match() -> None:
    few = engine(SPECS)
    # The noise before, between and after the real rules: order must survive.
    many = engine(NOISE[:3000] + SPECS[:2] + NOISE[3000:7000] + SPECS[2:] + NOISE[7000:])
    for method in ("GET", "POST", "HEAD"):
        for path in PATHS:
            expected = outcome_names(few.decide(method, path, rf.get(path)))
            assert outcome_names(many.decide(method, path, rf.get(path))) == expected, path
    assert outcome_names(many.decide("POST", "/api/orders/1", rf.get("/"))) == [
        "orders", "api", "all", "posts",
    ]  # fmt: skip


async def test_async_and_scope_decisions_match_the_same_rules_among_many() -> None:
    many = engine(NOISE[:5000] + SPECS + NOISE[5000:])
    result = await many.adecide("GET", "/api/12", rf.get("/api/12"))
    assert outcome_names(result) == ["regex", "api", "all"]
    scope = {"type": "http", "method": "get", "path": "/tenant/7/x", "client": ("1.2.3.4", 1)}
    decided = await many.decide_scope(scope)
    assert decided is not None and outcome_names(decided) == ["tenant-7", "all"]


def test_a_request_consults_only_the_rules_its_path_can_match() -> None:
    rules, errors = parse_limit_rules(NOISE + SPECS)
    assert not errors
    many = LimitEngine([counted(r) for r in rules], LocalLimiter(clock=ManualClock()))
    CountingMatcher.calls.clear()
    result = many.decide("GET", "/api/orders/1", rf.get("/api/orders/1"))
    assert outcome_names(result) == ["orders", "api", "all"]
    # The three /api prefix rules and the two without a prefix, not ten thousand more.
    assert len(CountingMatcher.calls) == 5
    CountingMatcher.calls.clear()
    many.decide("GET", "/elsewhere", rf.get("/elsewhere"))
    assert len(CountingMatcher.calls) == 2  # "regex" and "all"
