"""Admin-defined rules in force in every worker within about a second, without a query per
request: a version in the fleet store, checked by a background thread (docs/admin.md)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import fleetstore
from ..breakers.registry import get_breaker, registry
from ..conf import get_settings, on_reload
from ..fleetstore import VERSION_KEY, FleetStore
from .rules import AdminRules, build_admin_rules, read_admin_rows, row_problem, settings_names

__all__ = [
    "VERSION_KEY", "AdminRules", "admin_rules", "build_admin_rules", "bump", "connect_signals",
    "maybe_reload", "read_admin_rows", "reload_now", "row_problem", "settings_names",
]  # fmt: skip

logger = logging.getLogger("resilience_django.live")

_EMPTY = AdminRules()
_UNSET = object()
_OFF = float("inf")  # the interval RELOAD_INTERVAL None stands for: never


@dataclass(slots=True)
class _State:
    rules: AdminRules = _EMPTY
    # The rules' rows (kind -> rows), to rebuild them when settings change.
    rows: dict[str, tuple[Any, ...]] | None = None
    loaded_version: object = _UNSET
    interval: float | None = None
    store: FleetStore | None = None
    error_logged: float = -1e9
    thread: threading.Thread | None = None
    failed: bool = False  # the last round failed: drop its connections


_state = _State()
_wake = threading.Event()
_reload_lock = threading.Lock()
# Hot-path flags kept as plain module globals: the cheapest reads Python has.
_next_check = 0.0
_generations = itertools.count(1)
_generation = 0


def admin_rules() -> AdminRules:
    """The admin-defined rules loaded last (empty before it, and with ``RELOAD_INTERVAL: None``)."""
    return _EMPTY if _interval() == _OFF else _state.rules


def maybe_reload(now: float) -> int:
    """Call with ``time.monotonic()`` on each request; the generation of :func:`admin_rules`
    (read it before the rules; rebuild when it changed).  Never blocks, never raises."""
    global _next_check
    if now >= _next_check:
        interval = _interval()
        _next_check = now + interval
        if interval != _OFF:
            _kick()
    return _generation


def _interval() -> float:
    interval = _state.interval
    if interval is None:
        configured = get_settings().reload_interval
        interval = _OFF if configured is None else configured
        _state.interval = interval
    return interval


def _kick() -> None:
    with _reload_lock:  # taken at most once per interval, never per request
        thread = _state.thread
        if thread is None or not thread.is_alive():
            _state.thread = threading.Thread(target=_run, name="resilience-live", daemon=True)
            _state.thread.start()
    _wake.set()


def _run() -> None:
    from django.db import close_old_connections

    me = threading.current_thread()
    while True:
        # Woken by a request, or by itself each interval: after an idle spell the
        # rules are current when the next request comes.
        interval = _interval()
        _wake.wait(None if interval == _OFF else interval)
        if _state.thread is not me:
            return  # reset(): a newer thread, or none, takes over
        _wake.clear()
        try:
            _state.failed = False
            reload_now()
            store = _state.store
            if _state.failed and store is not None:
                store.recover()
            # What Django does after each request: closes connections past CONN_MAX_AGE
            # (all of them with the default 0) or broken, and keeps the others.
            close_old_connections()
        except Exception:  # never let the thread die: the next interval tries again
            _log_error("admin rules reload failed")


def _log_error(message: str) -> None:
    _state.failed = True
    now = time.monotonic()
    if now - _state.error_logged >= 60.0:
        _state.error_logged = now
        logger.exception("%s; the rules loaded last stay in force", message)


def reload_now() -> bool:
    """Reload the rules if their version changed; ``True`` if it did.  Never raises; reads
    nothing with ``RELOAD_INTERVAL: None``."""
    if _interval() == _OFF:
        return False
    try:
        version = _version_store().version()
    except Exception:
        _log_error("cannot read the admin rules version")
        if _state.loaded_version is not _UNSET:
            return False
        version = None
    if _state.loaded_version is not _UNSET and version == _state.loaded_version:
        return False
    try:
        rows = read_admin_rows()
        rules = build_admin_rules(rows)
    except Exception:
        _log_error("cannot load admin rules from the database")
        return False
    _state.loaded_version = version
    _state.rows = rows
    current = _state.rules
    if (rules.fingerprint, rules.conflicts, rules.skipped) == (
        current.fingerprint, current.conflicts, current.skipped,
    ):  # fmt: skip
        return False
    _swap(rules)
    # Breakers live in the registry, not the runtime: reconfigured in place, here.
    for name, policy in rules.breaker_policies.items():
        get_breaker(name).configure(policy)
    for name in set(current.breaker_policies) - set(rules.breaker_policies):
        get_breaker(name).configure(registry.policy_for(name))
    return True


def _version_store() -> FleetStore:
    if _state.store is None:
        _state.store = fleetstore.get_store()
    return _state.store


def bump() -> None:
    """Tell every process that the admin rules changed (call after the commit)."""
    # Unique, not a counter: two racing increments could both write n+1.
    token = f"{time.time_ns()}:{os.getpid()}:{id(object())}"
    # This process reloads at its next check even if the store is unreachable.
    _state.loaded_version = _UNSET
    if _interval() == _OFF:
        return  # nobody reads the version: admin rules are off
    try:
        _version_store().bump_version(token)
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


def _swap(rules: AdminRules) -> None:
    global _generation
    _state.rules = rules
    _generation = next(_generations)  # after: whoever sees it finds these rules (or newer)


def reset() -> None:
    """Forget everything loaded (settings changed, tests)."""
    global _next_check, _state
    _state = _State(failed=_state.failed)
    _swap(_EMPTY)
    _next_check = 0.0


def _on_settings_reload() -> None:
    # What is in force depends on the settings: rebuilt now from the rows loaded last,
    # without a query (docs/admin.md, "Precedence"); then a full reload.
    global _next_check
    _state.interval = None
    _state.store = None
    _state.loaded_version = _UNSET
    _next_check = 0.0
    rows = _state.rows
    if rows is not None:
        try:
            _swap(build_admin_rules(rows))
        except Exception:  # a settings change must not fail on an admin row
            logger.exception("cannot rebuild the admin rules for the new settings")
            _swap(_EMPTY)
    # The breakers follow what is in force now; settings win on a shared name.
    registry.reload()


def _after_fork() -> None:
    # The thread did not survive the fork, and a lock it held would stay held in the child.
    global _wake, _reload_lock
    _state.thread = None
    _wake = threading.Event()
    _reload_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
on_reload(_on_settings_reload)
