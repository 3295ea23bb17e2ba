"""Where a deployment's processes meet: admin rules' version, reports, commands, shared markers;
one protocol (``base.py``), three backends chosen by ``select.py`` (docs/breakers.md)."""

from __future__ import annotations

from .base import VERSION_KEY, FleetStore, command_seq
from .select import choose, get_store, reset

__all__ = ["VERSION_KEY", "FleetStore", "choose", "command_seq", "get_store", "reset"]
