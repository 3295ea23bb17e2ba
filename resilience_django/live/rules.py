"""Admin rows → the parsed rules in force, with the settings' own parsers and precedence."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..breakers.policy import BreakerPolicy, parse_breaker_policy
from ..conf import RouteBudget, _route_key_matcher, get_settings
from ..exceptions import ConfigError
from ..limiting.rules import LimitRule, parse_limit_rule
from ..shedding.rules import SheddingRule, parse_shedding_rule

__all__ = ["AdminRules", "load_admin_rules", "settings_names"]

logger = logging.getLogger("resilience_django.live")

T = TypeVar("T")


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

    def load(
        kind: str, rows: Any, name: Callable[[Any], str], parse: Callable[[Any, int], T]
    ) -> list[T]:
        # Every kind alike: fingerprint each enabled row, leave out the names the
        # settings define (they win), and parse with the settings' own parser.
        parsed: list[T] = []
        for index, row in enumerate(rows):
            fingerprint.append((kind, row.pk, row.updated_at))
            if name(row) in taken[kind]:
                conflicts.append((kind, name(row)))
                continue
            value = _parse(lambda r=row, i=index: parse(r, i))
            if value is not None:
                parsed.append(value)
        return parsed

    limits = load(
        "limit",
        LimitRow.objects.filter(enabled=True).order_by("name"),
        lambda r: r.name,
        lambda r, i: parse_limit_rule(r.as_setting(), index=i),
    )
    policies = load(
        "breaker",
        BreakerRow.objects.filter(enabled=True).order_by("name"),
        lambda r: r.name,
        lambda r, i: (r.name, parse_breaker_policy(r.name, r.as_setting())),
    )
    budgets = load(
        "route",
        RouteRow.objects.filter(enabled=True).order_by("route"),
        lambda r: r.route,
        lambda r, i: _route_budget(r.route, r.parsed_budget()),
    )
    shedding = load(
        "shedding",
        SheddingRow.objects.filter(enabled=True).order_by("position", "name"),
        lambda r: r.name,
        lambda r, i: parse_shedding_rule(r.as_setting(), index=i),
    )
    return AdminRules(
        limit_rules=tuple(limits),
        breaker_policies=dict(policies),
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
