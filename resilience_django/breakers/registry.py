"""The process-wide registry: one :class:`Breaker` per name, reconfigured in place when the
policies change (decorators keep theirs).  ``wiring.py`` hands it policies, listeners and hooks
(docs/architecture.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from .. import metrics
from .events import GAUGE_STATES, Listener, logger
from .policy import BreakerPolicy
from .state import Breaker

__all__ = ["BreakerRegistry", "all_breakers", "get_breaker", "registry"]

# name -> its policy, or None for the defaults.
PolicySource = Callable[[str], BreakerPolicy | None]


class BreakerRegistry:
    """Name -> Breaker; lookups of existing names take no lock."""

    def __init__(self) -> None:
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()
        self._on_create: list[Callable[[Breaker], None]] = []
        self._listeners: tuple[Listener, ...] = ()
        self._policies: PolicySource = lambda name: None
        self._names: Callable[[], Iterable[str]] = tuple

    def set_policy_source(
        self, policy: PolicySource, names: Callable[[], Iterable[str]] = tuple
    ) -> None:
        """Take policies from ``policy(name)`` (existing breakers at once); ``names()`` lists
        the configured breakers."""
        self._policies, self._names = policy, names
        self.reload()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(transition)`` on every transition of every breaker, now and later."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.add_listener(listener)

    def on_create(self, hook: Callable[[Breaker], None]) -> None:
        """Call ``hook(breaker)`` whenever this registry creates a breaker."""
        self._on_create.append(hook)

    def policy_for(self, name: str) -> BreakerPolicy:
        try:
            policy = self._policies(name)
        except Exception:  # not a 500 on every call: the breaker runs on the defaults
            logger.exception("breaker %s: no policy (the source raised), using the defaults", name)
            policy = None
        return policy if policy is not None else BreakerPolicy()

    def get(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            existing = self._breakers.get(name)
            if existing is not None:
                return existing
            breaker = Breaker(name, self.policy_for(name))
            for listener in self._listeners:
                breaker.add_listener(listener)
            self._breakers[name] = breaker
        # A series from the start, so dashboards list every breaker, not only tripped ones.
        metrics.breaker_state(name, GAUGE_STATES.get(breaker.state, breaker.state))
        # A misconfigured or unreachable fleet store must never fail the call that made it.
        try:
            for hook in list(self._on_create):
                hook(breaker)
        except Exception:
            logger.exception(
                "breaker %s: could not join the fleet; it works in this process only",
                name, extra={"breaker": name},
            )  # fmt: skip
        return breaker

    def created(self) -> list[Breaker]:
        """The breakers made so far, by name (configured ones not yet used are not made)."""
        return sorted(self._breakers.values(), key=lambda b: b.name)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def all(self) -> list[Breaker]:
        """Every breaker this process knows, configured ones included."""
        for name in self._names():
            if isinstance(name, str) and name.strip():
                self.get(name)
        return self.created()

    def reload(self) -> None:
        for name, breaker in list(self._breakers.items()):
            breaker.configure(self.policy_for(name))

    def reset_all(self, reason: str = "reset") -> None:
        """Every breaker back to its base state, kept in place: decorators hold theirs (tests)."""
        for breaker in list(self._breakers.values()):
            breaker.reset(reason)

    def clear(self) -> None:
        """Forget every breaker (tests)."""
        with self._lock:
            self._breakers.clear()


registry = BreakerRegistry()


def get_breaker(name: str) -> Breaker:
    """The breaker called ``name``, created with its configured (or default) policy."""
    return registry.get(name)


def all_breakers() -> list[Breaker]:
    return registry.all()
