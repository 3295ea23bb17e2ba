"""A limit rule with several problems reports every one of them, each with its own id."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from resilience_django.exceptions import ConfigErrors, every_error
from resilience_django.limiting.rules import parse_limit_rule, parse_limit_rules

BAD = {"name": "orders", "rate": "10/x", "algorithm": "leaky", "mode": "loud", "color": "red"}


def test_one_rule_with_four_problems_reports_all_four() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_limit_rule(BAD, index=0)
    ids = sorted(e.check_id for e in every_error(info.value))
    assert ids == ["resilience.E020", "resilience.E021", "resilience.E024", "resilience.E029"]
    # Code that knows only ConfigError reads the first problem.
    assert info.value.check_id == "resilience.E029"
    assert all("RESILIENCE['LIMITS'][0] ('orders')" in str(e) for e in every_error(info.value))


def test_a_bad_name_does_not_hide_the_other_problems() -> None:
    _, errors = parse_limit_rules([{"name": "no spaces", "scope": "everywhere"}])
    assert sorted(e.check_id for e in errors) == [
        "resilience.E020",  # rate missing
        "resilience.E023",
        "resilience.E026",
    ]


@override_settings(RESILIENCE={"LIMITS": [BAD]})
def test_check_lists_every_error_of_the_rule() -> None:
    ids = sorted(m.id for m in run_checks(tags=["resilience"]) if m.id.startswith("resilience.E"))
    assert ids == ["resilience.E020", "resilience.E021", "resilience.E024", "resilience.E029"]
