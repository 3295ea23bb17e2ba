"""One store where the processes of a deployment meet: the admin rules' version, process
reports, operator commands and shared breakers' markers.  One protocol (``base.py``), three
backends, chosen by ``select.py`` (docs/breakers.md, docs/admin.md).
"""

from __future__ import annotations

from .base import VERSION_KEY, FleetStore, command_seq
from .select import choose, get_store, reset

__all__ = ["VERSION_KEY", "FleetStore", "choose", "command_seq", "get_store", "reset"]
