"""What ``manage.py resilience_status`` reports, as one JSON-ready dict.  An unreachable
store or database is a line in the report (and, for ``--check``, a reason), never a raise."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .. import live
from ..admin_views.state import limiters
from ..conf import get_settings, parse_redis
from ..fleet import breaker_rows, fleet_processes, get_store
from ..limiting.rules import LimitRule
from ..shedding.rules import SheddingRule

__all__ = ["BAD_STATES", "OK", "PROBLEM", "UNKNOWN", "gather"]

# --check exit statuses.
OK, PROBLEM, UNKNOWN = 0, 1, 2
BAD_STATES = frozenset({"open", "forced_open", "half_open"})


def gather() -> dict[str, Any]:
    """The whole report; ``status`` says what ``--check`` exits with, and why."""
    settings = get_settings()
    try:
        store = get_store()
        where = "this process only" if store is None else type(store).__name__
        procs, fleet_error = fleet_processes(fresh_counts=False), None
    except Exception as exc:  # an unreachable store is a line in the report, not a traceback
        procs, where, fleet_error = [], "unreachable", f"{type(exc).__name__}: {exc}"
    malformed: list[str] = []  # other processes' reports: never trusted to have the right types
    procs = _sound(procs, _PROCESS, "report", malformed)
    rows = _sound(breaker_rows(procs), _BREAKER, "breaker row", malformed)
    admin, rules_error, rules_unknown = live.AdminRules(), None, False
    if settings.reload_interval is None:
        rules_error = "admin rules are off (RELOAD_INTERVAL is None): the settings rules alone"
    else:
        try:  # from the database, not a worker's memory: what every worker loads next
            admin = live.build_admin_rules(live.read_admin_rows())
        except Exception as exc:  # the database may be down: say so, show the rest
            rules_error = f"admin rules unavailable: {type(exc).__name__}: {exc}"
            rules_unknown = True
    rules = [_describe(rule, "settings") for rule in settings.limits]
    rules += [_describe(rule, "admin") for rule in admin.limit_rules]
    shedding = [_describe_shedding(rule, "settings") for rule in settings.shedding]
    shedding += [_describe_shedding(rule, "admin") for rule in admin.shedding_rules]
    workers = limiters(procs) if where != "this process only" else []
    workers = _sound(workers, _LIMITER, "limiter row", malformed)
    doc: dict[str, Any] = {
        "configured_backend": settings.backend,
        "redis": _ping_redis() if settings.backend == "redis" else None,
        "fleet": {
            "store": where,
            "error": fleet_error,
            "processes": [{field: p.get(field) for field in _PROCESS} for p in procs],
        },
        "limiters": workers,
        "limiter": {
            "configured": settings.backend,
            "processes": len(workers),
            "falling_back": sum(1 for w in workers if w.get("fallback_active")),
        },
        "breakers": rows,
        "configured_breakers": _configured_breakers(settings.breakers, admin, rows),
        "rules": rules,
        "shedding": shedding,
        "rules_error": rules_error,
        "overridden": [list(c) for c in admin.conflicts],
        "skipped": [list(s) for s in admin.skipped],
        "malformed": malformed,
    }
    doc["status"] = _status(doc, rules_unknown)
    return doc


_NUMBER = (int, float)
# The types the report reads from each field (when present); of a process, only these fields.
_PROCESS = {"host": str, "pid": int, "time": _NUMBER}
_BREAKER: dict[str, Any] = {"name": str, "state": str, "calls": int, "last_transition": dict}
_BREAKER |= dict.fromkeys(["failure_rate", "slow_rate", "ewma"], _NUMBER)
_LIMITER = {"backend": str, "live_instances": int, "last_latency_ms": _NUMBER}


def _sound(rows: list[Any], types: dict[str, Any], what: str, malformed: list[str]) -> list[Any]:
    """The ``rows`` whose fields have their ``types``; a line in ``malformed`` for each other."""
    kept = []
    for row in rows:
        bad = [k for k, t in types.items() if row.get(k) is not None and not isinstance(row[k], t)]
        if bad:
            where = f"{row.get('host')!r}:{row.get('pid')!r}"[:200]
            malformed.append(f"{what} of {where} left out: malformed {', '.join(bad)}")
        else:
            kept.append(row)
    return kept


def _configured_breakers(
    settings_breakers: Any, admin: Any, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every breaker: configured (settings, admin) or reported by a process, with its states."""
    states: dict[str, list[str]] = {}
    for row in rows:  # one pass: a big fleet reports a row per breaker per process
        states.setdefault(str(row.get("name")), []).append(str(row.get("state")))
    # Settings win over the admin, the admin over a name only a process reports.
    sources = dict.fromkeys(states, "defaults")
    sources |= {str(name): "admin" for name in admin.breaker_policies}
    sources |= {str(name): "settings" for name in settings_breakers}
    out = []
    for name in sorted(sources):
        seen = states.get(name, [])
        counts = dict(sorted(Counter(seen).items()))
        out.append(
            {"name": name, "source": sources[name], "processes": len(seen), "states": counts}
        )
    return out


def _ping_redis() -> dict[str, Any]:
    """Can this host reach the limiter's Redis?  One PING, bounded by a second."""
    from ..limiting.redis_conn import make_sync_client

    client, started = None, time.perf_counter()
    try:
        client = make_sync_client(parse_redis(get_settings().redis, budget=1.0))
        client.ping()
    except Exception as exc:
        return {"reachable": False, "latency_ms": None, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if client is not None:
            client.close()
    latency = round((time.perf_counter() - started) * 1000, 3)
    return {"reachable": True, "latency_ms": latency, "error": None}


def _status(doc: dict[str, Any], rules_unknown: bool) -> dict[str, Any]:
    """``--check``'s exit code (OK, PROBLEM, UNKNOWN: docs/admin.md says when) and why."""
    unknown: list[str] = [*doc["malformed"]]
    if rules_unknown:
        unknown.append(doc["rules_error"])
    problems: list[str] = []
    fleet = doc["fleet"]
    if fleet["error"] is not None:
        unknown.append(f"fleet store unreachable: {fleet['error']}")
    elif fleet["store"] == "this process only":
        unknown.append("the fleet is off (FLEET ENABLED False): no worker reports here")
    elif not fleet["processes"]:
        unknown.append("no worker has reported (each reports once it serves a request)")
    for row in doc["breakers"]:
        if row.get("state") in BAD_STATES:
            where = f"{row.get('host')}:{row.get('pid')}"
            problems.append(f"breaker {row.get('name')} is {row.get('state')} in {where}")
    configured = doc["configured_backend"]
    for w in doc["limiters"]:
        where = f"{w.get('host')}:{w.get('pid')}"
        if w.get("fallback_active"):
            problems.append(f"{where} is falling back to local limits")
        elif w.get("backend") != configured:
            problems.append(f"{where} limits on {w.get('backend')}, configured {configured}")
        elif not w.get("healthy", True):
            problems.append(f"{where} reports its limiter unhealthy")
    redis = doc["redis"]
    if redis is not None and not redis["reachable"]:
        problems.append(f"Redis unreachable from here: {redis['error']}")
    # Not knowing wins: with the fleet out of sight, "nothing open" would be a guess.
    code = UNKNOWN if unknown else PROBLEM if problems else OK
    state = {OK: "ok", PROBLEM: "degraded", UNKNOWN: "unknown"}[code]
    return {"code": code, "state": state, "problems": problems, "unknown": unknown}


def _describe(rule: LimitRule, source: str) -> dict[str, Any]:
    return {
        "name": rule.name,
        "rate": rule.rate,  # "100/m", as the admin and the settings show it
        "algorithm": str(rule.policy.algorithm),
        "key": rule.key,
        "match": rule.matcher.describe(),
        "scope": rule.scope,
        "mode": rule.mode,
        "source": source,
    }


def _describe_shedding(rule: SheddingRule, source: str) -> dict[str, Any]:
    # What the report shows of a shedding rule, after its name and match.
    shown = "max_concurrent queue max_wait adaptive min_concurrent critical_share critical"
    fields = {field: getattr(rule, field) for field in shown.split()}
    return {"name": rule.name, "match": rule.matcher.describe(), **fields, "source": source}
