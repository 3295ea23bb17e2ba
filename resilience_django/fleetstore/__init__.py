"""One store where the processes of a deployment meet (docs/breakers.md, docs/admin.md).

It carries the admin rules' version, every process's report, the operator
command log and shared breakers' open-until markers: one protocol
(:class:`FleetStore`), three backends (``redis.py``, ``cache.py``,
``database.py``), chosen by ``select.py``.
"""

from __future__ import annotations

from .base import COMMAND_LOG, COMMAND_TTL, VERSION_KEY, CommandBatch, FleetStore, command_seq
from .select import choose, get_store, reset

__all__ = [
    "COMMAND_LOG", "COMMAND_TTL", "VERSION_KEY", "CommandBatch", "FleetStore", "choose",
    "command_seq", "get_store", "reset",
]  # fmt: skip
