"""Shedding rules: methods in any case (GET brings HEAD), and first match among thousands."""

from __future__ import annotations

import pytest

from resilience_django.exceptions import ConfigError
from resilience_django.shedding.rules import SheddingRule, parse_shedding_rule
from resilience_django.shedding.shedder import Shedder


def rule(**overrides: object) -> SheddingRule:
    spec: dict[str, object] = {"name": "api", "path": "/api", "max_concurrent": 2}
    spec.update(overrides)
    return parse_shedding_rule(spec, index=0)


def test_rule_methods_in_lower_case_match_and_get_brings_head() -> None:
    door = Shedder([rule(methods=["get"])])
    permit = door.admit_sync("HEAD", "/api/x")
    assert permit is not None and permit.admitted
    permit.release()
    assert door.admit_sync("POST", "/api/x") is None


def test_critical_methods_match_in_any_case_and_get_brings_head() -> None:
    critical = rule(critical_methods=["delete", "get"])
    assert critical.is_critical("DELETE", "/api/x")
    assert critical.is_critical("HEAD", "/api/x")
    assert not critical.is_critical("POST", "/api/x")


def test_admin_shedding_rows_refuse_regex_paths_and_critical_paths() -> None:
    spec: dict[str, object] = {"name": "o", "path": "^/(a+)+$", "max_concurrent": 5}
    with pytest.raises(ConfigError, match="is a regular expression"):
        parse_shedding_rule(spec, index=0, allow_regex=False)
    spec = {"name": "o", "path": "/o", "max_concurrent": 5, "critical_paths": ["^/(a+)+$"]}
    with pytest.raises(ConfigError, match=r"critical_paths: path .* is a regular expression"):
        parse_shedding_rule(spec, index=0, allow_regex=False)
    assert parse_shedding_rule(spec, index=0).critical_regexes  # settings may


def test_first_match_among_ten_thousand_prefix_rules_is_the_same_rule() -> None:
    noise = [rule(name=f"t{i}", path=f"/tenant/{i}/") for i in range(10_000)]
    specific = rule(name="orders", path="/api/orders", max_concurrent=1)
    broad = rule(name="api", path="/api", max_concurrent=5)
    everything = rule(name="all", path=None, max_concurrent=5)
    door = Shedder([*noise[:5000], specific, *noise[5000:], broad, everything])
    matched = door.match("GET", "/api/orders/1")
    assert matched is not None and matched.name == "orders"
    matched = door.match("GET", "/api/users")
    assert matched is not None and matched.name == "api"
    matched = door.match("GET", "/tenant/9999/x")
    assert matched is not None and matched.name == "t9999"
    matched = door.match("GET", "/elsewhere")
    assert matched is not None and matched.name == "all"
    assert [r.name for r in door.rules][-3:] == ["t9999", "api", "all"]
