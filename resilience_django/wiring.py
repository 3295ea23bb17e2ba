"""Plugs the Django side of the package into its framework-free core, once per process
(what the core is handed, and when: docs/architecture.md, "The boundary")."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from .breakers.events import Transition
from .breakers.policy import BreakerPolicy
from .breakers.registry import registry
from .breakers.state import Breaker

__all__ = ["breaker_names", "breaker_policy", "connect"]

logger = logging.getLogger("resilience_django.breakers")

_lock = threading.RLock()  # reentrant: the steps read the settings, whose first parse calls back
_connected = _connecting = False


def connect() -> None:
    """Hand the core what it needs from the adapters; idempotent, cheap after the first call."""
    global _connected, _connecting
    if _connected:
        return
    with _lock:
        if _connected or _connecting:  # _connecting: this thread, calling back from a step
            return
        _connecting = True
        try:
            from . import fleet, live  # noqa: F401 - live reconfigures the breakers on changes

            registry.add_listener(send_signal)
            registry.on_create(fleet.on_breaker_created)
            # Last: a breaker made under the registry's lock calls back here through it.
            registry.set_policy_source(breaker_policy, breaker_names)
            _connected = True  # only now: others wait till here; a failure is retried
        finally:
            _connecting = False


def breaker_policy(name: str) -> BreakerPolicy | None:
    """The policy ``RESILIENCE["BREAKERS"]`` gives ``name``, else the admin's, else ``None``."""
    from .conf import get_settings
    from .live import admin_rules

    settings = get_settings()
    policy = settings.breakers.get(name)
    if policy is not None:
        return policy
    if name in settings.breaker_names:
        # The check reports the bad entry; at run time the breaker runs on the defaults.
        logger.error("breaker %s: bad settings, using the defaults", name)
        return None
    return admin_rules().breaker_policies.get(name)


def breaker_names() -> Iterable[str]:
    """The breakers ``RESILIENCE["BREAKERS"]`` names, valid or not (the dashboard lists them)."""
    from .conf import get_settings

    return get_settings().breaker_names


def send_signal(transition: Transition) -> None:
    """Send ``breaker_state_changed``; runs on the breaker's listener thread."""
    from .signals import breaker_state_changed

    t = transition
    for receiver, result in breaker_state_changed.send_robust(
        sender=Breaker, name=t.breaker, from_state=t.from_state, to_state=t.to_state,
        reason=t.reason, transition=t,
    ):  # fmt: skip
        if isinstance(result, Exception):
            logger.error(
                "breaker %s: breaker_state_changed receiver %r raised %r",
                t.breaker, receiver, result, extra={"breaker": t.breaker},
            )  # fmt: skip
