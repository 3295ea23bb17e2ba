"""One store where the processes of a deployment meet.

It carries the admin rules' version (live reload), every process's report
(the dashboard, ``resilience_status``), the operator command log and shared
breakers' open-until markers.  One protocol (:class:`FleetStore`), three
backends:

* ``redis.py``: Redis, with a Lua script that numbers commands atomically;
* ``cache.py``: a shared Django cache (django-redis, Memcached, file, database);
* ``database.py``: Django models, when nothing else is shared.

``select.py`` picks one: ``RESILIENCE["FLEET"]["STORE"]``, else Redis when one
is configured, else a shared cache, else the database.
"""

from __future__ import annotations

from .base import COMMAND_LOG, COMMAND_TTL, VERSION_KEY, CommandBatch, FleetStore, command_seq
from .select import choose, get_store, reset

__all__ = [
    "COMMAND_LOG", "COMMAND_TTL", "VERSION_KEY", "CommandBatch", "FleetStore", "choose",
    "command_seq", "get_store", "reset",
]  # fmt: skip
