"""The one protocol every fleet store implements, and what its backends share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

__all__ = [
    "CLOCK_SKEW", "COMMAND_LOG", "COMMAND_TTL", "READ_BATCH", "VERSION_KEY", "CommandBatch",
    "FleetStore", "command_seq",
]  # fmt: skip

VERSION_KEY = "resilience:admin-rules:version"
"""Where the Redis and cache stores keep the admin rules' version (no prefix: every
process of a deployment must agree on it whatever its FLEET settings)."""
COMMAND_LOG = 10_000
"""Commands the Redis log keeps (the newest); a reader further behind starts over from the
standing commands."""
COMMAND_TTL = 86_400
"""Seconds a command stays in a cache or database log; a reader further behind starts over
from the standing commands (the database keeps each breaker's latest command for good)."""
READ_BATCH = 500
CLOCK_SKEW = 300.0
"""Seconds the Redis and cache stores' process index tolerates between hosts' clocks: who is
live is the report's own expiry; the index, kept by the hosts' clocks, only lists candidates."""


class CommandBatch(NamedTuple):
    """What a reader gets from :meth:`FleetStore.read_commands`.

    ``standing``: when not ``None``, the reader starts over from it (breaker -> its latest
    command, as of some number before ``log``).  ``log``: the commands to apply next, in
    order.  ``seen``: the ``after`` of the next read.  ``stale``: the store's standing map
    is older than ``seen``: the reader should save its own (:meth:`FleetStore.save_standing`).
    ``epoch``: which numbering ``seen`` belongs to, for the reader to pass back with it.  A
    store that lost its data (Redis restarted without persistence, a cache cleared) numbers
    from 1 again under a new epoch: numbers the reader saw before mean nothing there.  (A
    reader that got ``None`` read before the first command: its numbers are the new ones.)
    """

    standing: dict[str, dict[str, Any]] | None
    log: list[dict[str, Any]]
    seen: int
    stale: bool = False
    epoch: str | None = None


class FleetStore(Protocol):
    """Where the processes of a deployment meet: called by background threads and operator
    tools, never by a request.  Any method may raise when the store is unreachable (callers
    log and retry); the backends inherit the two no-op defaults below."""

    kind: str  # "redis", "cache" or "database"
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
    def open_until(self, breakers: Sequence[str]) -> dict[str, float]: ...

    def recover(self) -> None:
        """After a failed round, on its background thread: drop what may be broken (the
        database store closes the thread's connection; the others reconnect by themselves)."""
        return None


def command_seq(command: Mapping[str, Any]) -> int:
    try:
        return int(command.get("seq", 0))
    except (TypeError, ValueError):
        return 0


def safe_key(name: str) -> str:
    # Breaker names are user text: keep keys free of spaces and control characters.
    return quote(name, safe="-_.:")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
