"""``manage.py resilience_status``: fleet breakers, limiter backend health, rules in force.

Rules in force are the limit and shedding rules from settings, then the
admin's, read from the database (the command runs outside the workers, so it
shows what they will load, not a worker's memory).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...breakers.fleet import fleet_snapshot, get_store
from ...conf import get_settings
from ...limiting.health import health as limiter_health
from ...limiting.rules import LimitRule
from ...live.rules import load_admin_rules
from ...shedding.rules import SheddingRule


def _rules_in_force() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """Limit and shedding rules: settings first, then the admin's (from the database),
    in the order they apply, and why admin rules are missing."""
    settings = get_settings()
    rules = [_describe(rule, "settings") for rule in settings.limits]
    shedding = [_describe_shedding(rule, "settings") for rule in settings.shedding]
    try:
        admin = load_admin_rules()
    except Exception as exc:  # the database may be down: say so, show the rest
        return rules, shedding, f"admin rules unavailable: {type(exc).__name__}: {exc}"
    rules += [_describe(rule, "admin") for rule in admin.limit_rules]
    shedding += [_describe_shedding(rule, "admin") for rule in admin.shedding_rules]
    return rules, shedding, None


def _describe(rule: LimitRule, source: str) -> dict[str, Any]:
    return {
        "name": rule.name,
        "rate": f"{rule.policy.rate.limit}/{rule.policy.rate.period:g}s",
        "algorithm": str(rule.policy.algorithm),
        "key": rule.key,
        "match": rule.matcher.describe(),
        "scope": rule.scope,
        "mode": rule.mode,
        "source": source,
    }


def _describe_shedding(rule: SheddingRule, source: str) -> dict[str, Any]:
    return {
        "name": rule.name,
        "match": rule.matcher.describe(),
        "max_concurrent": rule.max_concurrent,
        "queue": rule.queue,
        "max_wait": rule.max_wait,
        "adaptive": rule.adaptive,
        "min_concurrent": rule.min_concurrent,
        "critical_share": rule.critical_share,
        "critical": rule.critical,
        "source": source,
    }


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _shedding_line(rule: dict[str, Any]) -> str:
    size = str(rule["max_concurrent"])
    if rule["adaptive"]:
        size = f"{rule['min_concurrent']}..{size} adaptive"
    extra = ""
    if rule["critical"]:
        extra = " critical"
    elif rule["critical_share"]:
        extra = f" critical_share={rule['critical_share']:g}"
    return (
        f"  {rule['name']}: max_concurrent={size} queue={rule['queue']} "
        f"max_wait={_duration(rule['max_wait'])} on {rule['match']}{extra} ({rule['source']})"
    )


def _ago(at: float | None) -> str:
    if not at:
        return ""
    seconds = max(0.0, time.time() - at)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _pct(value: Any) -> str:
    return f"{float(value or 0) * 100:.1f}%"


class Command(BaseCommand):
    help = "Show every breaker of the fleet, the limiter backend's health and the rules in force."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = fleet_snapshot()
        health = limiter_health()
        rules, shedding, rules_error = _rules_in_force()
        if options["json"]:
            doc = {
                "breakers": rows,
                "limiter": health,
                "rules": rules,
                "shedding": shedding,
                "rules_error": rules_error,
            }
            self.stdout.write(json.dumps(doc, indent=2, default=str))
            return
        store = get_store()
        where = "this process only" if store is None else type(store).__name__
        self.stdout.write(self.style.MIGRATE_HEADING(f"Breakers ({where})"))
        if not rows:
            self.stdout.write("  no breakers reported")
        else:
            header = ("BREAKER", "PROCESS", "STATE", "CALLS", "FAIL", "SLOW", "EWMA", "LAST CHANGE")
            table = [header]
            for r in rows:
                t = r.get("last_transition") or {}
                change = (
                    f"{t.get('from')} -> {t.get('to')} {_ago(t.get('at'))} ({t.get('reason')})"
                    if t
                    else ""
                )
                table.append(
                    (
                        str(r.get("name")),
                        f"{r.get('host')}:{r.get('pid')}",
                        str(r.get("state")),
                        str(r.get("calls", 0)),
                        _pct(r.get("failure_rate")),
                        _pct(r.get("slow_rate")),
                        f"{float(r.get('ewma') or 0):.2f}",
                        change,
                    )
                )
            widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
            for row in table:
                cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                self.stdout.write("  " + "  ".join([*cells, row[-1]]).rstrip())
        self.stdout.write(self.style.MIGRATE_HEADING("Limiter backend"))
        for key, value in health.items():
            self.stdout.write(f"  {key}: {value}")
        self.stdout.write(self.style.MIGRATE_HEADING("Rules in force"))
        if not rules:
            self.stdout.write("  no limit rules")
        for rule in rules:
            self.stdout.write(
                f"  {rule['name']}: {rule['rate']} {rule['algorithm']} key={rule['key']} "
                f"on {rule['match']} {rule['scope']} {rule['mode']} ({rule['source']})"
            )
        self.stdout.write(self.style.MIGRATE_HEADING("Shedding rules in force (first match)"))
        if not shedding:
            self.stdout.write("  no shedding rules")
        for rule in shedding:
            self.stdout.write(_shedding_line(rule))
        if rules_error is not None:
            self.stdout.write(self.style.WARNING(f"  {rules_error}"))
