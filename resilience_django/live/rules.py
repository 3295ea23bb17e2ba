"""Admin rows → the parsed rules in force, with the settings' own parsers and precedence."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..admin_choices import AdminChoices, admin_choices
from ..breakers.policy import BreakerPolicy
from ..conf import RouteBudget, get_settings
from ..exceptions import ConfigError
from ..limiting.rules import LimitRule
from ..shedding.rules import SheddingRule

__all__ = ["AdminRules", "build_admin_rules", "read_admin_rows", "row_problem", "settings_names"]

logger = logging.getLogger("resilience_django.live")


@dataclass(frozen=True, slots=True)
class AdminRules:
    """The admin-defined rules in force (settings rules are not in here)."""

    limit_rules: tuple[LimitRule, ...] = ()
    breaker_policies: Mapping[str, BreakerPolicy] = field(default_factory=dict)
    route_budgets: tuple[RouteBudget, ...] = ()
    shedding_rules: tuple[SheddingRule, ...] = ()  # by position, then name
    # (kind, name) of enabled rows left out because settings define the name.
    conflicts: tuple[tuple[str, str], ...] = ()
    # (kind, name, reason) of enabled rows left out because they cannot be loaded.
    skipped: tuple[tuple[str, str, str], ...] = ()
    # What "changed" is decided on.
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
    # Raw settings: a settings rule that fails its check still claims its name.
    if not isinstance(entries, list | tuple):
        return frozenset()
    return frozenset(str(e.get("name")) for e in entries if isinstance(e, Mapping))


def read_admin_rows() -> dict[str, tuple[Any, ...]]:
    """Kind -> its enabled rows, in load order: the only database reads of the live reload."""
    from .. import models

    return {
        "limit": tuple(models.LimitRule.objects.filter(enabled=True).order_by("name")),
        "breaker": tuple(models.BreakerPolicy.objects.filter(enabled=True).order_by("name")),
        "route": tuple(models.RouteDeadline.objects.filter(enabled=True).order_by("route")),
        "shedding": tuple(
            models.SheddingRule.objects.filter(enabled=True).order_by("position", "name")
        ),
    }


def build_admin_rules(rows: dict[str, tuple[Any, ...]]) -> AdminRules:
    """The rules in force from these rows under the current settings (no database query)."""
    taken = settings_names()
    choices = admin_choices()
    conflicts: list[tuple[str, str]] = []
    skipped: list[tuple[str, str, str]] = []
    fingerprint: list[Any] = []

    def load(kind: str) -> list[Any]:
        parsed: list[Any] = []
        for index, row in enumerate(rows[kind]):
            fingerprint.append((kind, row.pk, row.updated_at))
            name = row.route if kind == "route" else row.name
            if name in taken[kind]:
                conflicts.append((kind, name))
                continue
            value, problem = _load_row(row, index, choices)
            if problem is not None:
                logger.error("admin %s rule %r left out: %s", kind, name, problem)
                skipped.append((kind, name, problem))
                continue
            parsed.append((name, value) if kind == "breaker" else value)
        return parsed

    return AdminRules(
        limit_rules=tuple(load("limit")),
        breaker_policies=dict(load("breaker")),
        route_budgets=tuple(load("route")),
        shedding_rules=tuple(load("shedding")),
        conflicts=tuple(conflicts),
        skipped=tuple(skipped),
        fingerprint=tuple(fingerprint),
    )


def row_problem(row: Any) -> str | None:
    """Why this admin row cannot be in force, or ``None``: what the loader would say."""
    return _load_row(row, 0, admin_choices())[1]


def _load_row(row: Any, index: int, choices: AdminChoices) -> tuple[Any, str | None]:
    # The allowlist first, as strings: a path settings do not list is never imported.
    if refusals := row.refusals(choices):
        return None, "; ".join(f"{field}: {why}" for field, why in refusals.items())
    try:
        return row.parse(index), None
    except ConfigError as exc:
        return None, f"{exc} ({exc.check_id})"
    except Exception as exc:  # a bug: the others still load; its text, to the log only
        logger.exception("admin rule %r could not be parsed", row)
        return None, f"{type(exc).__name__} (the server log has the details)"
