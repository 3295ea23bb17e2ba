"""Django signals the package sends.

``breaker_state_changed`` is sent from the breakers' listener thread, never from
the request that caused the change, with keyword arguments ``name``,
``from_state``, ``to_state``, ``reason`` and ``transition`` (a
``resilience_django.breakers.events.Transition``).  ``sender`` is the
``Breaker`` class.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["breaker_state_changed"]

breaker_state_changed = Signal()
