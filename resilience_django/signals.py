"""Django signals the package sends: ``breaker_state_changed`` (docs/breakers.md,
"Hearing about transitions")."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["breaker_state_changed"]

breaker_state_changed = Signal()
