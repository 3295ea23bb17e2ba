"""The process-wide registry: one :class:`Breaker` per name.

Breakers named in ``RESILIENCE["BREAKERS"]`` get their policy from there; any
other name gets the defaults on first use.  When the setting changes, existing
breakers are reconfigured in place, so references held by decorators stay valid.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .. import metrics
from ..exceptions import ConfigError
from .events import Transition
from .policy import BreakerPolicy, parse_breaker_policy
from .settings import breaker_settings, on_change
from .state import Breaker

__all__ = ["all_breakers", "get_breaker", "on_create", "registry"]

logger = logging.getLogger("resilience_django.breakers")


def _send_signal(transition: Transition) -> None:
    from ..signals import breaker_state_changed

    for receiver, result in breaker_state_changed.send_robust(
        sender=Breaker,
        name=transition.breaker,
        from_state=transition.from_state,
        to_state=transition.to_state,
        reason=transition.reason,
        transition=transition,
    ):
        if isinstance(result, Exception):
            logger.error(
                "breaker %s: breaker_state_changed receiver %r raised %r",
                transition.breaker,
                receiver,
                result,
                extra={"breaker": transition.breaker},
            )


_GAUGE_STATES = frozenset({"closed", "open", "half_open"})


class BreakerRegistry:
    """Name -> Breaker; lookups of existing names take no lock."""

    def __init__(self) -> None:
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()
        self._on_create: list[Callable[[Breaker], None]] = []

    def policy_for(self, name: str) -> BreakerPolicy:
        raw = breaker_settings().get(name)
        if raw is None:
            # Not in settings: an admin-defined policy, if one is in force
            # (settings win on a shared name, so they are looked at first).
            from ..live import admin_rules

            return admin_rules().breaker_policies.get(name) or BreakerPolicy()
        try:
            return parse_breaker_policy(name, raw)
        except ConfigError:
            # The system check reports it at start-up; at run time a bad entry must
            # not turn every call into a 500, so the breaker runs on the defaults.
            logger.exception("breaker %s: bad settings, using the defaults", name)
            return BreakerPolicy()

    def get(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = Breaker(name, self.policy_for(name))
                breaker.add_listener(_send_signal)
                self._breakers[name] = breaker
                created = True
            else:
                created = False
        if created:
            # A series from the start, so dashboards list every breaker, not only tripped ones.
            metrics.breaker_state(name, breaker.state if breaker.state in _GAUGE_STATES else "open")
            # Publishing to the fleet is a side concern: a misconfigured or
            # unreachable fleet store must never fail the call that made the breaker.
            try:
                _load_fleet()
                for hook in list(self._on_create):
                    hook(breaker)
            except Exception:
                logger.exception(
                    "breaker %s: could not join the fleet; it works in this process only",
                    name, extra={"breaker": name},
                )  # fmt: skip
        return breaker

    def all(self) -> list[Breaker]:
        """Every breaker this process knows, configured ones included."""
        for name in breaker_settings():
            if isinstance(name, str) and name.strip():
                self.get(name)
        return sorted(self._breakers.values(), key=lambda b: b.name)

    def reload(self) -> None:
        for name, breaker in list(self._breakers.items()):
            breaker.configure(self.policy_for(name))

    def reset_all(self, reason: str = "reset") -> None:
        """Every breaker back to its base state with empty statistics, kept in place.

        In place, not forgotten: decorators hold their breaker (tests).
        """
        for breaker in list(self._breakers.values()):
            breaker.reset(reason)

    def clear(self) -> None:
        """Forget every breaker (tests)."""
        with self._lock:
            self._breakers.clear()


def _load_fleet() -> None:
    # The fleet module registers its on_create hook when imported; importing it here
    # (not at module level: it imports this module) makes every process publish as
    # soon as it has a breaker, without the app having to wire anything.
    from . import fleet  # noqa: F401


registry = BreakerRegistry()
on_change(registry.reload)


def get_breaker(name: str) -> Breaker:
    """The breaker called ``name``, created with its configured (or default) policy."""
    return registry.get(name)


def all_breakers() -> list[Breaker]:
    return registry.all()


def on_create(hook: Callable[[Breaker], None]) -> None:
    """Call ``hook(breaker)`` whenever the registry creates a breaker (the fleet uses it)."""
    registry._on_create.append(hook)
