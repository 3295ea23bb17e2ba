"""``manage.py resilience_status``: what the fleet's workers report, what is configured, and
with ``--check`` an exit status (docs/admin.md)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...checks import check_settings
from ...observability.log import json_or_repr
from ..status import UNKNOWN, gather

# Other processes' names, hosts, reasons: a \x1b[2J, an OSC 8 link, a \r print as text, not act.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def _shedding_line(rule: dict[str, Any]) -> str:
    size = str(rule["max_concurrent"])
    if rule["adaptive"]:
        size = f"{rule['min_concurrent']}..{size} adaptive"
    wait = f"{rule['max_wait'] * 1000:g}ms" if rule["max_wait"] < 1 else f"{rule['max_wait']:g}s"
    share = rule["critical_share"]
    extra = " critical" if rule["critical"] else f" critical_share={share:g}" if share else ""
    return (
        f"  {rule['name']}: max_concurrent={size} queue={rule['queue']} "
        f"max_wait={wait} on {rule['match']}{extra} ({rule['source']})"
    )


def _ago(at: Any) -> str:
    if not isinstance(at, int | float) or not at:  # another process's report: any type
        return ""
    seconds = max(0.0, time.time() - at)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _pct(value: Any) -> str:
    return f"{float(value or 0) * 100:.1f}%"


def _json(doc: dict[str, Any]) -> str:
    # Another process's row may hold what JSON has no form for (NaN, a tuple key, a cycle).
    for rows in (doc["breakers"], doc["limiters"], doc["fleet"]["processes"]):
        rows[:] = [{str(k): json_or_repr(v) for k, v in row.items()} for row in rows]
    return json.dumps(doc, indent=2, default=str, allow_nan=False)


class Command(BaseCommand):
    help = (
        "Show what the fleet's workers report (breakers, limiter backend health), every "
        "configured breaker and the rules in force; --check sets the exit status."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 0 if all is well, 1 if a breaker is open or half-open or a worker "
            "falls back, 2 if it cannot tell (store or database unreachable, no worker "
            "reporting, a malformed report)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Checked here too, not only through requires_system_checks: call_command()
        # and --skip-checks skip those, and the store would then raise.
        errors = [m for m in check_settings() if m.is_serious()]
        for error in errors:
            self.stderr.write(self.style.ERROR(f"{error.id}: {error.msg}"))
            if error.hint:
                self.stderr.write(f"    HINT: {error.hint}")
        if errors:
            raise CommandError(
                f"RESILIENCE has {len(errors)} error(s), listed above; "
                "fix them (python manage.py check lists them too) and run this again.",
                returncode=UNKNOWN if options["check"] else 1,
            )
        doc = gather()
        if options["json"]:
            self.stdout.write(_json(doc))  # JSON escapes on its own
        else:
            self._print(doc)
        status = doc["status"]
        if options["check"] and status["code"]:
            reasons = "; ".join(status["unknown"] or status["problems"]).translate(_ESCAPES)
            raise CommandError(f"status {status['state']}: {reasons}", returncode=status["code"])

    def _write(self, text: str, style: Any = str) -> None:
        # Escaped before styling: the colours stay, other processes' escapes do not.
        self.stdout.write(style(text.translate(_ESCAPES)))

    def _print(self, doc: dict[str, Any]) -> None:
        fleet = doc["fleet"]
        self._write("Fleet", self.style.MIGRATE_HEADING)
        if fleet["error"] is not None:
            self._write(f"  fleet store unreachable: {fleet['error']}", self.style.ERROR)
        else:
            count = len(fleet["processes"])
            self._write(f"  store: {fleet['store']}, {count} process(es) reporting")
        self._print_limiter(doc)
        self._print_breakers(doc)
        self._print_rules(doc)
        status = doc["status"]
        self._write("Status", self.style.MIGRATE_HEADING)
        style = {0: self.style.SUCCESS, 1: self.style.WARNING}.get(status["code"], self.style.ERROR)
        self._write(f"  {status['state']} ({status['code']})", style)
        for reason in [*status["unknown"], *status["problems"]]:
            self._write(f"  - {reason}")

    def _print_limiter(self, doc: dict[str, Any]) -> None:
        self._write("Limiter backend", self.style.MIGRATE_HEADING)
        self._write(f"  configured backend: {doc['configured_backend']}")
        redis = doc["redis"]
        if redis is not None and redis["reachable"]:
            self._write(f"  redis: reachable from here ({redis['latency_ms']:g} ms)")
        elif redis is not None:
            self._write(f"  redis: unreachable: {redis['error']}", self.style.ERROR)
        if not doc["limiters"]:
            self._write("  no worker has reported its limiter")
        for w in doc["limiters"]:
            latency = w.get("last_latency_ms")
            self._write(
                f"  {w.get('host')}:{w.get('pid')}: backend={w.get('backend')} "
                f"healthy={w.get('healthy')} fallback_active={w.get('fallback_active')} "
                f"live_instances={w.get('live_instances')} "
                f"last_latency={'-' if latency is None else f'{latency:g}ms'} "
                f"reported {_ago(w.get('time'))}"
            )

    def _print_breakers(self, doc: dict[str, Any]) -> None:
        self._write("Breakers", self.style.MIGRATE_HEADING)
        configured = doc["configured_breakers"]
        if not configured:
            self._write("  no breakers reported or configured")
            return
        header = ("BREAKER", "SOURCE", "PROCESS", "STATE", "CALLS", "FAIL", "SLOW", "EWMA",
                  "LAST CHANGE")  # fmt: skip
        table = [header]
        by_name: dict[str, list[dict[str, Any]]] = {}
        for r in doc["breakers"]:  # one pass, not one per breaker: fleets can be big
            by_name.setdefault(str(r.get("name")), []).append(r)
        for breaker in configured:
            name, source = breaker["name"], breaker["source"]
            if name not in by_name:
                table.append((name, source, "-", "not used yet", "", "", "", "", ""))
            for r in by_name.get(name, []):
                t = r.get("last_transition") or {}
                at = _ago(t.get("at"))
                change = f"{t.get('from')} -> {t.get('to')} {at} ({t.get('reason')})" if t else ""
                table.append((
                    name, source, f"{r.get('host')}:{r.get('pid')}", str(r.get("state")),
                    str(r.get("calls", 0)), _pct(r.get("failure_rate")), _pct(r.get("slow_rate")),
                    f"{float(r.get('ewma') or 0):.2f}", change,
                ))  # fmt: skip
        shown = [[cell.translate(_ESCAPES) for cell in row] for row in table]  # widths as printed
        widths = [max(len(row[i]) for row in shown) for i in range(len(header) - 1)]
        for row in shown:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self._write("  " + "  ".join([*cells, row[-1]]).rstrip())

    def _print_rules(self, doc: dict[str, Any]) -> None:
        self._write("Rules in force", self.style.MIGRATE_HEADING)
        if not doc["rules"]:
            self._write("  no limit rules")
        for rule in doc["rules"]:
            self._write(
                f"  {rule['name']}: {rule['rate']} {rule['algorithm']} key={rule['key']} "
                f"on {rule['match']} {rule['scope']} {rule['mode']} ({rule['source']})"
            )
        self._write("Shedding rules in force (first match)", self.style.MIGRATE_HEADING)
        if not doc["shedding"]:
            self._write("  no shedding rules")
        for rule in doc["shedding"]:
            self._write(_shedding_line(rule))
        for kind, name in doc["overridden"]:
            self._write(f"  admin {kind} rule {name!r}: overridden by settings")
        for kind, name, reason in doc["skipped"]:
            self._write(f"  admin {kind} rule {name!r} left out: {reason}", self.style.WARNING)
        if doc["rules_error"] is not None:
            self._write(f"  {doc['rules_error']}", self.style.WARNING)
