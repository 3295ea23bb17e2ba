"""Admin-defined rules in force in every worker within about a second.

How a change travels (no restart, no database query per request):

1. The admin saves a row.  ``post_save``/``post_delete`` schedule
   :func:`bump` with ``transaction.on_commit``, so a rolled-back change bumps
   nothing and a reader never sees the bump before the row.
2. :func:`bump` writes a fresh token to one version key in the shared store:
   the Django cache ``default``, or Redis when ``RESILIENCE["BACKEND"]`` is
   ``"redis"``.
3. Every process calls :func:`maybe_reload` on its request path.  When not due
   it is two global reads and a float compare: no lock, no allocation.  At most
   every ``RESILIENCE["RELOAD_INTERVAL"]`` (default 1 s) it wakes a background
   thread, which reads the version key and, when it changed, reloads the rules
   from the database and swaps :func:`admin_rules` whole.  The next
   :func:`maybe_reload` returns ``True`` once, so the caller rebuilds what it
   compiled from them.  The request never waits for the cache or the database.

If the store or the database fails, the rules loaded last (at first: none,
so the settings rules alone) stay in force, the error is logged at most once
a minute, and the thread tries again at the next interval.

Precedence: a settings rule and an admin rule with the same name (limit rule
name, breaker name, deadline route) → **the settings rule wins**; the admin
rule is left out of :func:`admin_rules` and listed in ``conflicts`` (the admin
shows it as "overridden by settings").  Otherwise both apply.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .breakers.policy import BreakerPolicy, parse_breaker_policy
from .conf import RouteBudget, _route_key_matcher, get_settings, on_reload
from .exceptions import ConfigError
from .limiting.rules import LimitRule, parse_limit_rule
from .units import parse_duration

__all__ = [
    "AdminRules",
    "admin_rules",
    "bump",
    "connect_signals",
    "load_admin_rules",
    "maybe_reload",
    "reload_now",
    "settings_names",
]

logger = logging.getLogger("resilience_django.live")
VERSION_KEY = "resilience:admin-rules:version"


@dataclass(frozen=True, slots=True)
class AdminRules:
    """The admin-defined rules in force (settings rules are not in here)."""

    limit_rules: tuple[LimitRule, ...] = ()
    breaker_policies: Mapping[str, BreakerPolicy] = field(default_factory=dict)
    route_budgets: tuple[RouteBudget, ...] = ()
    # (kind, name) of enabled admin rules left out because settings define the name.
    conflicts: tuple[tuple[str, str], ...] = ()
    # Fingerprint of the rows loaded: what "changed" is decided on.
    fingerprint: tuple[Any, ...] = ()


_EMPTY = AdminRules()
_UNSET = object()


class _State:
    __slots__ = ("error_logged", "interval", "loaded_version", "rules", "store", "thread")

    def __init__(self) -> None:
        self.rules = _EMPTY
        self.loaded_version: object = _UNSET
        self.interval: float | None = None
        self.store: Any = None
        self.thread: threading.Thread | None = None
        self.error_logged = -1e9


_state = _State()
_wake = threading.Event()
_reload_lock = threading.Lock()
# Hot-path flags kept as plain module globals: the cheapest reads Python has.
_next_check = 0.0
_changed = False


def admin_rules() -> AdminRules:
    """The admin-defined rules loaded last (empty until the first load)."""
    return _state.rules


def maybe_reload(now: float) -> bool:
    """Call with ``time.monotonic()`` on each request; ``True`` once after new rules loaded.

    Never blocks and never raises: the check itself runs on a background thread.
    """
    global _changed, _next_check
    if _changed:
        _changed = False
        return True
    if now < _next_check:
        return False
    _next_check = now + _interval()
    _kick()
    return False


def _interval() -> float:
    interval = _state.interval
    if interval is None:
        raw = get_settings().raw.get("RELOAD_INTERVAL", 1.0)
        try:
            interval = parse_duration(raw)
        except ValueError:
            logger.error("RESILIENCE['RELOAD_INTERVAL'] = %r is not a duration; using 1s", raw)
            interval = 1.0
        _state.interval = interval
    return interval


def _kick() -> None:
    thread = _state.thread
    if thread is None or not thread.is_alive():
        with _reload_lock:
            thread = _state.thread
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=_run, name="resilience-live", daemon=True)
                _state.thread = thread
                thread.start()
    _wake.set()


def _run() -> None:
    from django.db import connections

    while True:
        _wake.wait()
        _wake.clear()
        try:
            reload_now()
        except Exception:  # never let the thread die: the next interval tries again
            _log_error("admin rules reload failed")
        finally:
            # This thread's connections would otherwise stay open between reloads.
            connections.close_all()


def _log_error(message: str) -> None:
    now = time.monotonic()
    if now - _state.error_logged >= 60.0:
        _state.error_logged = now
        logger.exception("%s; the rules loaded last stay in force", message)


def reload_now() -> bool:
    """Check the version key and reload from the database if it changed; ``True`` if it did.

    Runs on the background thread; tests call it directly.  Never raises.
    """
    global _changed
    try:
        version = _version_store().get()
    except Exception:
        _log_error("cannot read the admin rules version")
        if _state.loaded_version is not _UNSET:
            return False
        version = None
    if _state.loaded_version is not _UNSET and version == _state.loaded_version:
        return False
    try:
        rules = load_admin_rules()
    except Exception:
        _log_error("cannot load admin rules from the database")
        return False
    _state.loaded_version = version
    if rules.fingerprint == _state.rules.fingerprint and rules.conflicts == _state.rules.conflicts:
        return False
    previous, _state.rules = _state.rules, rules
    _apply_breaker_policies(previous, rules)
    _changed = True
    return True


def _apply_breaker_policies(previous: AdminRules, rules: AdminRules) -> None:
    # Breakers live in the registry, not in the runtime the caller rebuilds, so
    # they are reconfigured here, in place (references held by decorators stay valid).
    from .breakers.registry import get_breaker, registry

    for name, policy in rules.breaker_policies.items():
        get_breaker(name).configure(policy)
    for name in set(previous.breaker_policies) - set(rules.breaker_policies):
        get_breaker(name).configure(registry.policy_for(name))


def settings_names() -> dict[str, frozenset[str]]:
    """Names the settings define, per kind: ``limit``, ``breaker``, ``route``."""
    raw = get_settings().raw
    limits = raw.get("LIMITS") or []
    limit_names = (
        {str(e.get("name")) for e in limits if isinstance(e, Mapping)}
        if isinstance(limits, list | tuple)
        else set()
    )
    breakers = raw.get("BREAKERS") or {}
    deadline = raw.get("DEADLINE") or {}
    routes = deadline.get("ROUTES") if isinstance(deadline, Mapping) else None
    return {
        "limit": frozenset(limit_names),
        "breaker": frozenset(map(str, breakers)) if isinstance(breakers, Mapping) else frozenset(),
        "route": frozenset(map(str, routes)) if isinstance(routes, Mapping) else frozenset(),
    }


def load_admin_rules() -> AdminRules:
    """Read the enabled rows and parse them with the settings' own parsers.

    A row that no longer parses (written around the admin, or a key function
    that went away) is left out and logged, never allowed to break the rest.
    """
    from .models import BreakerPolicy as BreakerRow
    from .models import LimitRule as LimitRow
    from .models import RouteDeadline as RouteRow

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
    return AdminRules(
        limit_rules=tuple(limits),
        breaker_policies=policies,
        route_budgets=tuple(budgets),
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


# -- the version key ------------------------------------------------------------


class _CacheVersion:
    __slots__ = ("cache",)

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def get(self) -> Any:
        return self.cache.get(VERSION_KEY)

    def set(self, token: str) -> None:
        self.cache.set(VERSION_KEY, token, timeout=None)


class _RedisVersion:
    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self) -> Any:
        value = self.client.get(VERSION_KEY)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, token: str) -> None:
        self.client.set(VERSION_KEY, token)


def _version_store() -> _CacheVersion | _RedisVersion:
    store: _CacheVersion | _RedisVersion | None = _state.store
    if store is None:
        settings = get_settings()
        if settings.backend == "redis":
            from .limiting.redis_conn import make_sync_client, parse_redis_settings

            # A background thread reads it, so a generous timeout costs no request anything.
            store = _RedisVersion(
                make_sync_client(parse_redis_settings(settings.redis, budget=1.0))
            )
        else:
            from django.core.cache import caches

            store = _CacheVersion(caches["default"])
        _state.store = store
    return store


def bump() -> None:
    """Tell every process that the admin rules changed (call after the commit)."""
    # A token no other bump can produce: with a counter, two racing increments
    # could both write n+1 and a reader that saw the first would miss the second.
    token = f"{time.time_ns()}:{os.getpid()}:{id(object())}"
    # This process reloads at its next check even if the store is unreachable.
    _state.loaded_version = _UNSET
    try:
        _version_store().set(token)
    except Exception:
        logger.exception("cannot publish the admin rules version; other processes will not reload")


def _on_change(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from django.db import transaction

    transaction.on_commit(bump, using=using)


def connect_signals(models: Iterable[Any]) -> None:
    """Bump the version after every committed save or delete of these models."""
    from django.db.models.signals import post_delete, post_save

    for model in models:
        uid = f"resilience_django.live.{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=uid + ".save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=uid + ".delete")


def reset() -> None:
    """Forget everything loaded (settings changed, tests)."""
    global _changed, _next_check
    _state.rules = _EMPTY
    _state.loaded_version = _UNSET
    _state.interval = None
    _state.store = None
    _changed = False
    _next_check = 0.0


def _on_settings_reload() -> None:
    # The rules stay in force until the next load; only what settings decide is dropped.
    _state.loaded_version = _UNSET
    _state.interval = None
    _state.store = None


def _after_fork() -> None:
    _state.thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
on_reload(_on_settings_reload)
