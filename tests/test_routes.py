"""Which requests a rule applies to: methods in any case, GET bringing HEAD, the path index."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience_django.deadline_policy import DeadlinePolicy, DeadlineSettings, RouteBudget
from resilience_django.exceptions import ConfigError
from resilience_django.routes import (
    RouteIndex,
    RouteMatcher,
    compile_path,
    method_set,
    normalize_method,
    parse_route_matcher,
)


def matcher(**spec: object) -> RouteMatcher:
    return parse_route_matcher(spec, where="rule", check_id="resilience.E027")


# -- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("get", "GET"), ("Get", "GET"), ("GET", "GET"), ("delete", "DELETE"), ("purge", "PURGE")],
)
def test_lowercase_method_is_normalized_to_upper_case(sent: str, expected: str) -> None:
    assert normalize_method(sent) == expected


def test_known_upper_case_method_is_returned_as_is_without_a_new_string() -> None:
    method = "".join(["PO", "ST"])  # not the interned literal
    assert normalize_method(method) == "POST"
    assert normalize_method("get") is normalize_method("GET")


def test_rule_methods_match_whatever_case_they_were_written_in() -> None:
    rule = matcher(path="/api/", methods=["post", "Put"])
    assert rule.matches("POST", "/api/x") and rule.matches("PUT", "/api/x")
    assert not rule.matches("GET", "/api/x")


def test_a_rule_listing_get_also_covers_head() -> None:
    rule = matcher(path="/api/", methods=["GET"])
    assert rule.matches("HEAD", "/api/x")
    assert not rule.matches("POST", "/api/x")


def test_a_rule_listing_head_alone_does_not_cover_get() -> None:
    rule = matcher(methods=["HEAD"])
    assert rule.matches("HEAD", "/") and not rule.matches("GET", "/")


def test_a_rule_without_get_does_not_cover_head() -> None:
    assert not matcher(methods=["POST"]).matches("HEAD", "/")


def test_a_matcher_built_directly_normalizes_its_methods_too() -> None:
    built = RouteMatcher(prefix="/api", methods=frozenset({"get"}))
    assert built.methods == frozenset({"GET", "HEAD"})
    assert method_set(["delete"]) == frozenset({"DELETE"})


# -- admin rows: no regexes ----------------------------------------------------------------


def test_a_regex_path_is_refused_when_regexes_are_not_allowed() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_path("^/(a+)+$", where="rule", check_id="resilience.E027", allow_regex=False)
    assert "regular expression" in str(caught.value)
    assert caught.value.check_id == "resilience.E027"
    assert "settings" in (caught.value.hint or "")


def test_settings_may_still_use_a_regex_path() -> None:
    prefix, regex = compile_path(r"^/api/\d+$", where="rule", check_id="resilience.E027")
    assert prefix is None and regex is not None and regex.match("/api/12")


def test_a_prefix_is_accepted_when_regexes_are_not_allowed() -> None:
    rule = parse_route_matcher(
        {"path": "/api/", "view": "orders:quote"},
        where="rule",
        check_id="resilience.E027",
        allow_regex=False,
    )
    assert rule.prefix == "/api/" and rule.view == "orders:quote"


# -- the index --------------------------------------------------------------------------------


def test_prefix_is_a_plain_string_prefix_not_a_path_segment() -> None:
    index = RouteIndex([(matcher(path="/api/orders"), "orders")], linear_below=0)
    assert list(index.candidates("/api/ordersX")) == ["orders"]
    assert list(index.candidates("/api/orders/1")) == ["orders"]
    assert list(index.candidates("/api/order")) == []


def test_candidates_keep_the_order_the_rules_were_given_in() -> None:
    entries = [
        (matcher(path="/api/orders"), "long"),
        (matcher(path=r"^/api/\d+"), "regex"),
        (matcher(path="/api"), "short"),
        (matcher(), "all"),
        (matcher(path="/api/orders"), "long-again"),
        (matcher(view="orders:quote"), "view"),
    ]
    index = RouteIndex(entries, linear_below=0)
    merged = RouteIndex(entries, linear_below=0, prebuilt_max=0)
    assert list(merged.candidates("/api/orders/1")) == list(index.candidates("/api/orders/1"))
    assert list(index.candidates("/api/orders/1")) == [
        "long", "regex", "short", "all", "long-again", "view",
    ]  # fmt: skip
    assert list(index.candidates("/api/x")) == ["regex", "short", "all", "view"]
    assert list(index.candidates("/")) == ["regex", "all", "view"]


def test_ten_thousand_non_matching_prefix_rules_are_never_candidates() -> None:
    entries = [(matcher(path=f"/tenant/{i}/"), f"t{i}") for i in range(10_000)]
    entries.insert(5_000, (matcher(path="/api/"), "api"))
    index = RouteIndex(entries)
    assert index._lengths is not None
    assert list(index.candidates("/api/orders")) == ["api"]
    assert list(index.candidates("/tenant/42/x")) == ["t42"]
    assert list(index.candidates("/other")) == []


def test_short_rule_lists_are_scanned_whole() -> None:
    index = RouteIndex([(matcher(path="/api/"), "api"), (matcher(path="/b/"), "b")])
    assert index._lengths is None
    assert list(index.candidates("/other")) == ["api", "b"]


_SEGMENTS = st.sampled_from(["/", "/a", "/ab", "/a/", "/b", "/a/b", "/api", "/api/", "/x"])
_SPEC = st.one_of(
    st.builds(lambda p: {"path": p}, _SEGMENTS),
    st.builds(lambda p: {"path": p, "methods": ["get"]}, _SEGMENTS),
    st.builds(lambda p: {"path": "^" + re.escape(p)}, _SEGMENTS),
    st.just({}),
    st.just({"methods": ["POST"]}),
)


@given(
    specs=st.lists(_SPEC, max_size=30),
    path=st.lists(st.sampled_from(["/", "a", "b", "api", "x", "/a"]), max_size=6).map(
        lambda parts: "/" + "".join(parts)
    ),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    # 0: every answer merged per request; 64: built ahead of time.
    prebuilt_max=st.sampled_from([0, 3, 64]),
)
def test_indexed_matching_finds_exactly_what_a_full_scan_finds(
    specs: list[dict[str, object]], path: str, method: str, prebuilt_max: int
) -> None:
    entries = [(matcher(**spec), position) for position, spec in enumerate(specs)]
    scanned = [pos for m, pos in entries if m.matches(method, path)]
    index = RouteIndex(entries, linear_below=0, prebuilt_max=prebuilt_max)
    found = [pos for pos in index.candidates(path) if entries[pos][0].matches(method, path)]
    assert found == scanned


def test_deadline_route_budgets_among_many_prefixes_still_pick_the_first_match() -> None:
    routes = [
        RouteBudget(RouteMatcher(prefix=f"/tenant/{i}/"), 5.0, f"t{i}") for i in range(10_000)
    ]
    routes.insert(3, RouteBudget(RouteMatcher(prefix="/api/orders"), 0.8, "/api/orders"))
    routes.append(RouteBudget(RouteMatcher(prefix="/api/"), 2.0, "/api/"))
    policy = DeadlinePolicy(DeadlineSettings(default=30.0, routes=tuple(routes)))
    for path, budget, route in [
        ("/api/orders/1", 0.8, "/api/orders"),
        ("/api/other", 2.0, "/api/"),
        ("/tenant/7/x", 5.0, "t7"),
        ("/nowhere", 30.0, "default"),
    ]:
        deadline = policy.start("GET", path, {}, 0.0)
        assert deadline is not None and (deadline.budget, deadline.route) == (budget, route)


@pytest.mark.parametrize("empty", [[], ()])
def test_an_empty_methods_list_is_refused_by_every_rule_kind(empty: list[str]) -> None:
    # It would match no request: a shedding rule or route breaker that silently does nothing.
    from resilience_django.breakers.policy import parse_breaker_policy
    from resilience_django.shedding.rules import parse_shedding_rule

    shed = {"name": "s", "path": "/api/", "max_concurrent": 5, "methods": empty}
    with pytest.raises(ConfigError) as shed_error:
        parse_shedding_rule(shed, index=0)
    assert shed_error.value.check_id == "resilience.E072"
    assert "methods is empty" in str(shed_error.value)
    with pytest.raises(ConfigError) as breaker_error:
        parse_breaker_policy("pricing", {"path": "/api/", "methods": empty})
    assert breaker_error.value.check_id == "resilience.E069"
    matcher = parse_route_matcher({"path": "/api/", "methods": ["post"]}, where="x", check_id="E")
    assert matcher.methods == frozenset({"POST"})
