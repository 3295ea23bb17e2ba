"""A shedding rule with several problems reports every one of them, each with its own id."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from resilience_django.exceptions import ConfigErrors, every_error
from resilience_django.shedding.rules import parse_shedding_rule

BAD = {"name": "orders", "max_concurrent": 0, "queue": -1, "max_wait": "soon",
       "critical_share": 1.5}  # fmt: skip
IDS = ["resilience.E073", "resilience.E074", "resilience.E075", "resilience.E077"]


def test_one_rule_with_four_problems_reports_all_four() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_shedding_rule(BAD, index=0)
    assert sorted(e.check_id for e in every_error(info.value)) == IDS


def test_a_rule_with_one_problem_raises_it_alone() -> None:
    with pytest.raises(Exception) as info:
        parse_shedding_rule({"name": "orders", "max_concurrent": 0}, index=0)
    assert not isinstance(info.value, ConfigErrors)
    assert info.value.check_id == "resilience.E073"  # type: ignore[attr-defined]


@override_settings(RESILIENCE={"SHEDDING": [BAD]})
def test_check_lists_every_error_of_the_rule() -> None:
    ids = sorted(m.id for m in run_checks(tags=["resilience"]) if m.id.startswith("resilience.E"))
    assert ids == IDS
