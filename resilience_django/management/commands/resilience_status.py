"""``manage.py resilience_status``: fleet breakers, limiter backend health, rules in force."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ...breakers.fleet import fleet_snapshot, get_store


def _limiter_health() -> dict[str, Any] | None:
    """``resilience_django.limiting.health()`` when the limiting package provides it."""
    try:
        limiting = importlib.import_module("resilience_django.limiting")
    except ImportError:
        return None
    health = getattr(limiting, "health", None)
    if health is None:
        try:
            health = importlib.import_module("resilience_django.limiting.health")
        except ImportError:
            return None
    if not callable(health):  # the submodule, not a function
        health = getattr(health, "health", None)
    if not callable(health):
        return None
    result = health()
    return dict(result) if isinstance(result, Mapping) else {"status": result}


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
        health = _limiter_health()
        raw = getattr(settings, "RESILIENCE", {}) or {}
        rules = list(raw.get("LIMITS", []) or []) if isinstance(raw, Mapping) else []
        if options["json"]:
            doc = {"breakers": rows, "limiter": health, "rules": rules}
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
        if health is None:
            self.stdout.write("  local backend")
        else:
            for key, value in health.items():
                self.stdout.write(f"  {key}: {value}")
        self.stdout.write(self.style.MIGRATE_HEADING("Rules in force"))
        if not rules:
            self.stdout.write("  no rules in settings")
        for rule in rules:
            if isinstance(rule, Mapping):
                self.stdout.write(
                    f"  {rule.get('name', '?')}: {rule.get('rate', '?')} "
                    f"{rule.get('scope', 'local')} {rule.get('mode', 'enforce')}"
                )
