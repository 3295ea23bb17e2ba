"""Redis Cluster: one core breaker per master, so a dead master sends only its slots local.

Each master (``host:port``) gets a ``Breaker`` (``FallbackSettings.breaker``) on
its first failure; a request whose first rule's slot lives on a *down* master is
decided locally, every other request stays on Redis.  A down master comes back
after ``RECOVERY_PROBES`` probes in a row read (``EXISTS``, not ``PING``: during an
outage keyed commands answer ``CLUSTERDOWN``) a key that failed there within budget,
routed to whichever master holds its slot *now*.  When a replica took over, the old
name is *retired*: calls redis-py still sends there before refreshing its topology
do not count, so a failover switches each worker once each way.  The request path
reads ``breakers`` and ``down`` (a frozenset, replaced whole) without the lock;
both are empty while all is well, so a healthy cluster never looks up a node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..breakers.state import Breaker
from .fallback import FallbackSettings

__all__ = ["NodeBreakers"]

_perf = time.perf_counter


class NodeBreakers:
    """Which cluster masters are down for this process, and when they come back."""

    __slots__ = ("_announce", "_lock", "_samples", "_settings", "_successes", "breakers", "down",
                 "retired")  # fmt: skip

    def __init__(
        self, settings: FallbackSettings, announce: Callable[[bool, str, float], None]
    ) -> None:
        self._settings = settings
        self._announce = announce
        self._lock = threading.Lock()
        # Masters with a failure counted or down; a clean answer drops a closed one.
        self.breakers: dict[str, Breaker] = {}
        self._samples: dict[str, bytes] = {}  # a key that failed on each node, for the probe
        self._successes: dict[str, int] = {}
        self.down: frozenset[str] = frozenset()
        self.retired: frozenset[str] = frozenset()

    def failed(self, node: str, elapsed: float, key: bytes) -> None:
        """A call to ``node`` (for ``key``) failed after ``elapsed`` seconds."""
        with self._lock:
            if node in self.retired:
                return
            breaker = self.breakers.get(node)
            if breaker is None:
                breaker = self.breakers[node] = self._settings.breaker(f"limiter:redis:{node}")
            self._samples[node] = key
        token = breaker.try_acquire()
        if token is None or breaker.record_failure(token, elapsed) is None:
            return
        with self._lock:
            self.down = self.down | {node}
            self._successes[node] = 0
        failures = self._settings.failures
        self._announce(True, f"cluster node {node} failed {failures} calls", elapsed)

    def answered(self, node: str | None) -> None:
        """A call to ``node`` was answered in time: its failures are no longer in a row."""
        breaker = None if node is None else self.breakers.get(node)
        token = None if breaker is None else breaker.try_acquire()
        if node is None or breaker is None or token is None:
            return  # healthy, or down (only the probe brings it back)
        if token.consecutive:
            breaker.record_success(token)
        with self._lock:
            if not token.consecutive and self.breakers.get(node) is breaker:
                del self.breakers[node]

    def probe(self, client: Any, budget: float) -> None:
        """Look at every down master once (probe thread); bring back those that recovered."""
        for node in self.down:
            key = self._samples.get(node)
            if key is None:
                continue
            start = _perf()
            try:
                client.exists(key)
                back = _perf() - start <= budget
            except Exception:  # dead, unreachable or CLUSTERDOWN: still down
                back = False
            successes = self._successes[node] = self._successes.get(node, 0) + 1 if back else 0
            if successes < self._settings.recovery_probes:
                continue
            owner = _owner(client, key)
            why = (
                "it answers again" if owner in (None, node) else f"its slots are served by {owner}"
            )
            with self._lock:
                breaker = self.breakers.pop(node, None)
                self.down = self.down - {node}
                if owner not in (None, node):
                    self.retired = self.retired | {node}
            if breaker is not None:
                breaker.reset(why)  # reported as a breaker transition too
            self._announce(False, f"cluster node {node}: {why}", _perf() - start)

    def health(self) -> dict[str, Any]:
        return {"nodes_down": sorted(self.down)}


def _owner(client: Any, key: bytes) -> str | None:
    try:
        node = client.get_node_from_key(key)
    except Exception:  # no master for the slot
        return None
    return None if node is None else str(node.name)
