"""The one protocol every fleet store implements, and what its backends share."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

__all__ = [
    "CLOCK_SKEW", "CLOSING", "COMMAND_LOG", "COMMAND_TTL", "READ_BATCH", "VERSION_KEY",
    "CommandBatch", "FleetStore", "command_seq",
]  # fmt: skip

# No prefix: every process of a deployment must agree on it whatever its FLEET settings.
VERSION_KEY = "resilience:admin-rules:version"
# How far back a reader finds the log (docs/breakers.md, "Command ordering"); one further
# behind starts over from the standing commands.
COMMAND_LOG = 10_000  # commands in the Redis log
COMMAND_TTL = 86_400  # seconds in a cache or database log
READ_BATCH = 500
# Sending one deletes the breaker's open-until marker first (fleet.py reads commands first).
CLOSING = ("reset", "force_close")
CLOCK_SKEW = 300.0
"""Seconds the Redis and cache stores' process index tolerates between hosts' clocks: who is
live is the report's own expiry; the index, kept by the hosts' clocks, only lists candidates."""


class CommandBatch(NamedTuple):
    """What a reader gets from :meth:`FleetStore.read_commands` (commands as the store holds
    them, ``None`` for what does not parse: the reader checks them).

    ``standing``: when not ``None``, the reader starts over from it (breaker -> its latest
    command, as of some number before ``log``).  ``log``: the commands to apply next, in
    order.  ``seen``: the ``after`` of the next read.  ``stale``: the store's standing map
    is older than ``seen``: the reader should save its own (:meth:`FleetStore.save_standing`).
    ``epoch``: names the numbering ``seen`` belongs to (a store that lost its data numbers
    from 1 again under a new one; ``None``: no command yet), for the reader to pass back.
    """

    standing: dict[str, Any] | None
    log: list[Any]
    seen: int
    stale: bool = False
    epoch: str | None = None


class FleetStore(Protocol):
    """Where the processes of a deployment meet: called by background threads and operator
    tools, never by a request.  Any method may raise when the store is unreachable (callers
    log and retry); the backends inherit the two no-op defaults below."""

    # Seconds between two reports of a process (the longest; transitions publish at once).
    publish_every: float

    def version(self) -> str | None: ...  # the admin rules' version
    def bump_version(self, token: str) -> None: ...
    def publish(self, proc: str, data: Mapping[str, Any], ttl: float) -> None: ...
    def processes(self, ttl: float) -> list[dict[str, Any]]: ...
    def send_command(self, breaker: str, action: str) -> int: ...
    def read_commands(self, after: int | None, epoch: str | None = None) -> CommandBatch: ...
    def save_standing(self, seen: int, standing: Mapping[str, Mapping[str, Any]]) -> None:
        return None  # a store whose standing map is exact (a script, a query) never lags

    def set_open_until(self, breaker: str, until: float) -> None: ...
    def open_until(self, breakers: Sequence[str]) -> dict[str, float]: ...  # breakers: never empty
    def clear_open_until(self, breaker: str) -> None: ...

    def recover(self) -> None:
        """After a failed round, on its thread: drop what may be broken (a DB connection)."""
        return None


def command_seq(command: Mapping[str, Any]) -> int:
    try:
        return int(command.get("seq", 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def number(value: Any) -> float:
    """An open-until marker as a float; NaN for one that is no number (``fleet.py`` ignores it)."""
    try:
        return float(text(value))
    except (TypeError, ValueError):
        return math.nan


def parse_json(value: Any) -> Any:
    """``value`` parsed; ``None`` for one hand-edited or corrupted (the reader skips it)."""
    try:
        return json.loads(value)
    except ValueError:
        return None


def safe_key(name: str) -> str:
    # Breaker names are user text: keep keys free of spaces and control characters.
    return quote(name, safe="-_.:")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
