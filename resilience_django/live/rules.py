"""Admin rows → the parsed rules in force, with the settings' own parsers and precedence."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..breakers.policy import BreakerPolicy, parse_breaker_policy
from ..conf import RouteBudget, _route_key_matcher, get_settings
from ..exceptions import ConfigError
from ..limiting.rules import LimitRule, parse_limit_rule
from ..shedding.rules import SheddingRule, parse_shedding_rule

__all__ = ["AdminRules", "load_admin_rules", "settings_names"]

logger = logging.getLogger("resilience_django.live")


@dataclass(frozen=True, slots=True)
class AdminRules:
    """The admin-defined rules in force (settings rules are not in here)."""

    limit_rules: tuple[LimitRule, ...] = ()
    breaker_policies: Mapping[str, BreakerPolicy] = field(default_factory=dict)
    route_budgets: tuple[RouteBudget, ...] = ()
    # In the order they are tried (position, then name), after the settings' own.
    shedding_rules: tuple[SheddingRule, ...] = ()
    # (kind, name) of enabled admin rules left out because settings define the name.
    conflicts: tuple[tuple[str, str], ...] = ()
    # Fingerprint of the rows loaded: what "changed" is decided on.
    fingerprint: tuple[Any, ...] = ()


def settings_names() -> dict[str, frozenset[str]]:
    """Names the settings define, per kind: ``limit``, ``breaker``, ``route``, ``shedding``."""
    raw = get_settings().raw
    breakers = raw.get("BREAKERS") or {}
    deadline = raw.get("DEADLINE") or {}
    routes = deadline.get("ROUTES") if isinstance(deadline, Mapping) else None
    return {
        "limit": _list_names(raw.get("LIMITS")),
        "shedding": _list_names(raw.get("SHEDDING")),
        "breaker": frozenset(map(str, breakers)) if isinstance(breakers, Mapping) else frozenset(),
        "route": frozenset(map(str, routes)) if isinstance(routes, Mapping) else frozenset(),
    }


def _list_names(entries: Any) -> frozenset[str]:
    # Raw settings, not the parsed rules: a settings rule that fails its check
    # still claims its name, so a broken deploy does not hand it to the admin.
    if not isinstance(entries, list | tuple):
        return frozenset()
    return frozenset(str(e.get("name")) for e in entries if isinstance(e, Mapping))


def load_admin_rules() -> AdminRules:
    """Read the enabled rows and parse them with the settings' own parsers.

    A row that no longer parses (written around the admin, or a key function
    that went away) is left out and logged, never allowed to break the rest.
    """
    from ..models import BreakerPolicy as BreakerRow
    from ..models import LimitRule as LimitRow
    from ..models import RouteDeadline as RouteRow
    from ..models import SheddingRule as SheddingRow

    taken = settings_names()
    conflicts: list[tuple[str, str]] = []
    fingerprint: list[Any] = []
    limits: list[LimitRule] = []
    for index, limit_row in enumerate(LimitRow.objects.filter(enabled=True).order_by("name")):
        fingerprint.append(("limit", limit_row.pk, limit_row.updated_at))
        if limit_row.name in taken["limit"]:
            conflicts.append(("limit", limit_row.name))
            continue
        parsed = _parse(lambda r=limit_row, i=index: parse_limit_rule(r.as_setting(), index=i))
        if parsed is not None:
            limits.append(parsed)
    policies: dict[str, BreakerPolicy] = {}
    for breaker_row in BreakerRow.objects.filter(enabled=True).order_by("name"):
        fingerprint.append(("breaker", breaker_row.pk, breaker_row.updated_at))
        if breaker_row.name in taken["breaker"]:
            conflicts.append(("breaker", breaker_row.name))
            continue
        policy = _parse(lambda r=breaker_row: parse_breaker_policy(r.name, r.as_setting()))
        if policy is not None:
            policies[breaker_row.name] = policy
    budgets: list[RouteBudget] = []
    for route_row in RouteRow.objects.filter(enabled=True).order_by("route"):
        fingerprint.append(("route", route_row.pk, route_row.updated_at))
        if route_row.route in taken["route"]:
            conflicts.append(("route", route_row.route))
            continue
        budget = _parse(lambda r=route_row: _route_budget(r.route, r.parsed_budget()))
        if budget is not None:
            budgets.append(budget)
    shedding: list[SheddingRule] = []
    for index, shed_row in enumerate(
        SheddingRow.objects.filter(enabled=True).order_by("position", "name")
    ):
        fingerprint.append(("shedding", shed_row.pk, shed_row.updated_at))
        if shed_row.name in taken["shedding"]:
            conflicts.append(("shedding", shed_row.name))
            continue
        rule = _parse(lambda r=shed_row, i=index: parse_shedding_rule(r.as_setting(), index=i))
        if rule is not None:
            shedding.append(rule)
    return AdminRules(
        limit_rules=tuple(limits),
        breaker_policies=policies,
        route_budgets=tuple(budgets),
        shedding_rules=tuple(shedding),
        conflicts=tuple(conflicts),
        fingerprint=tuple(fingerprint),
    )


def _route_budget(route: str, budget: float) -> RouteBudget:
    matcher = _route_key_matcher(route, f"admin route deadline {route!r}")
    return RouteBudget(matcher=matcher, budget=budget, label=route)


def _parse(make: Any) -> Any:
    try:
        return make()
    except ConfigError as exc:
        logger.error("admin rule left out: %s (%s)", exc, exc.check_id)
        return None
