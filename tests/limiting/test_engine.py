"""The engine both adapters use: matching, keys, all-or-nothing, shadow, scope."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import RequestFactory

from resilience_django.clock import ManualClock
from resilience_django.limiting import engine as engine_module
from resilience_django.limiting.engine import NO_LIMITS, LimitEngine
from resilience_django.limiting.local import LocalLimiter
from resilience_django.limiting.rules import parse_limit_rules

rf = RequestFactory()


def make(*specs, local=None, **kwargs):
    rules, errors = parse_limit_rules(list(specs))
    assert not errors
    return LimitEngine(rules, LocalLimiter(clock=ManualClock()), local=local, **kwargs)


def get(path="/api/x", ip="198.51.100.4", **meta):
    return rf.get(path, REMOTE_ADDR=ip, **meta)


@pytest.fixture
def reported(monkeypatch):
    calls = []
    monkeypatch.setattr(engine_module.metrics, "request_rejected", lambda *a: calls.append(a))
    return calls


def test_request_rejected_by_rule_b_does_not_consume_rule_a(reported):
    engine = make(
        {"name": "a", "path": "/api/", "rate": "3/m"},
        {"name": "b", "path": "/api/x", "rate": "1/m"},
    )
    assert engine.decide("GET", "/api/x", get()).allowed
    rejected = engine.decide("GET", "/api/x", get())
    assert not rejected.allowed and rejected.rejected == ("b",)
    assert reported == [("b", "rate_limited")]
    # a counted one request only: two more fit on a path b does not cover.
    assert [engine.decide("GET", "/api/y", get()).allowed for _ in range(3)] == [True, True, False]


async def test_async_decide_is_all_or_nothing_too(reported):
    engine = make(
        {"name": "a", "path": "/api/", "rate": "3/m"},
        {"name": "b", "path": "/api/x", "rate": "1/m"},
    )
    assert (await engine.adecide("GET", "/api/x", get())).allowed
    assert not (await engine.adecide("GET", "/api/x", get())).allowed
    results = [(await engine.adecide("GET", "/api/y", get())).allowed for _ in range(3)]
    assert results == [True, True, False]


def test_shadow_rule_never_blocks_but_is_counted_reported_and_in_headers(reported):
    engine = make({"name": "s", "rate": "2/m", "mode": "shadow"})
    results = [engine.decide("GET", "/", get()) for _ in range(4)]
    assert all(r.allowed for r in results)
    assert [r.shadow_rejected for r in results] == [(), (), ("s",), ("s",)]
    assert reported == [("s", "shadow"), ("s", "shadow")]
    assert dict(results[-1].headers)["RateLimit"].startswith('"s";r=0;t=')


def test_shadow_rejection_does_not_roll_back_an_enforced_rule(reported):
    engine = make(
        {"name": "e", "rate": "5/m"},
        {"name": "s", "rate": "1/m", "mode": "shadow"},
    )
    for _ in range(3):
        assert engine.decide("GET", "/", get()).allowed
    assert engine.decide("GET", "/", get()).decision.outcomes[0].remaining == 1


def test_off_rules_are_dropped_and_unmatched_requests_get_no_limits():
    engine = make(
        {"name": "o", "rate": "1/m", "mode": "off"}, {"name": "p", "path": "/p", "rate": "1/m"}
    )
    assert [r.name for r in engine.rules] == ["p"]
    assert engine.decide("GET", "/other", get()) is NO_LIMITS
    assert NO_LIMITS.headers == [] and NO_LIMITS.allowed and NO_LIMITS.retry_after == 0


def test_a_missing_key_means_the_rule_does_not_apply():
    engine = make({"name": "u", "rate": "1/m", "key": "user"})
    anonymous = get()
    anonymous.user = SimpleNamespace(is_authenticated=False, pk=None)
    assert all(engine.decide("GET", "/", anonymous) is NO_LIMITS for _ in range(3))
    member = get()
    member.user = SimpleNamespace(is_authenticated=True, pk=9)
    assert engine.decide("GET", "/", member).allowed
    assert not engine.decide("GET", "/", member).allowed


def test_view_name_rules_match_only_when_the_view_name_is_given():
    engine = make({"name": "v", "view": "orders:quote", "rate": "1/m"})
    assert engine.needs_view_name
    assert engine.decide("GET", "/q", get()) is NO_LIMITS
    assert engine.decide("GET", "/q", get(), view_name="orders:quote").allowed
    assert not engine.decide("GET", "/q", get(), view_name="orders:quote").allowed


def test_rejection_result_carries_retry_after_and_headers():
    engine = make({"name": "login", "rate": "1/m"}, {"name": "api", "rate": "100/30s"})
    engine.decide("GET", "/", get())
    result = engine.decide("GET", "/", get())
    assert result.rejected == ("login",)
    assert result.retry_after == pytest.approx(60.0)
    headers = dict(result.headers)
    assert headers["RateLimit-Policy"] == '"login";q=1;w=60, "api";q=100;w=30'
    assert headers["RateLimit"] == '"login";r=0;t=60, "api";r=99;t=30'


def scope(path="/api/x", client="198.51.100.4", headers=(), root_path=""):
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": root_path,
        "client": (client, 1),
        "headers": list(headers),
    }


async def test_scope_decides_when_every_matching_rule_has_a_scope_key():
    engine = make(
        {"name": "ip", "path": "/api/", "rate": "1/m"},
        {"name": "tok", "path": "/api/", "rate": "5/m", "key": "header:X-Token"},
        {"name": "user", "path": "/account/", "rate": "1/m", "key": "user"},
    )
    assert engine.scope_capable and engine.needs_request
    first = await engine.decide_scope(scope(headers=[(b"x-token", b"t")]))
    assert first is not None and first.allowed and len(first.decision.outcomes) == 2
    second = await engine.decide_scope(scope())
    assert second is not None and second.rejected == ("ip",)
    # A request a request-keyed rule could match is left to the middleware.
    assert await engine.decide_scope(scope("/account/me")) is None


async def test_scope_leaves_view_rules_to_the_middleware_and_strips_root_path():
    engine = make(
        {"name": "v", "path": "/api/", "view": "orders:quote", "rate": "1/m"},
        {"name": "ip", "path": "/web/", "rate": "1/m"},
    )
    assert await engine.decide_scope(scope("/api/quote")) is None
    assert (await engine.decide_scope(scope("/mnt/web/", root_path="/mnt"))).allowed
    assert not (await engine.decide_scope(scope("/mnt/web/", root_path="/mnt"))).allowed


def test_scope_capable_is_false_when_no_rule_can_use_the_scope():
    assert not make({"name": "u", "rate": "1/m", "key": "user"}).scope_capable
    assert not make({"name": "v", "view": "x", "rate": "1/m"}).scope_capable


def test_local_and_distributed_rules_go_to_their_own_limiters():
    local = LocalLimiter(clock=ManualClock())
    engine = make(
        {"name": "l", "rate": "5/m", "scope": "local"},
        {"name": "d", "rate": "1/m", "scope": "distributed"},
        local=local,
    )
    assert engine.decide("GET", "/", get()).allowed
    result = engine.decide("GET", "/", get())
    assert result.rejected == ("d",)
    assert [o.check.policy.name for o in result.decision.outcomes] == ["l", "d"]
    assert len(local) == 1  # only the local rule's key lives in the local store


async def test_local_rejection_skips_the_distributed_limiter():
    class Refusing:
        async def adecide(self, checks):
            raise AssertionError("distributed store asked after a local rejection")

        def decide(self, checks):
            raise AssertionError("distributed store asked after a local rejection")

    rules, _ = parse_limit_rules(
        [{"name": "l", "rate": "1/m"}, {"name": "d", "rate": "9/m", "scope": "distributed"}]
    )
    local = LocalLimiter(clock=ManualClock())
    local.decide(checks_for(rules[0], "198.51.100.4"))
    engine = LimitEngine(rules, Refusing(), local=local)
    assert not engine.decide("GET", "/", get()).allowed
    assert not (await engine.adecide("GET", "/", get())).allowed


def checks_for(rule, key):
    from resilience_django.limiting.decision import LimitCheck

    return (LimitCheck(rule.policy, key),)


def test_engine_without_rules_is_falsy():
    assert not make()
    assert make({"name": "a", "rate": "1/m"})


def test_engine_says_when_it_needs_the_request_or_the_view_name():
    plain = make({"name": "a", "rate": "1/m"}, {"name": "h", "rate": "1/m", "key": "header:X-A"})
    assert not plain.needs_view_name and not plain.needs_request
    # Keys that read request.user are decided in process_view, after AuthenticationMiddleware.
    assert make({"name": "u", "rate": "1/m", "key": "user_or_ip"}).needs_request
    assert make({"name": "c", "rate": "1/m", "key": "tests.limiting.keyfuncs.tenant"}).needs_request
    assert make({"name": "p", "rate": "1/m", "key": "param:t"}).needs_request
    assert make({"name": "v", "rate": "1/m", "view": "hello"}).needs_view_name
