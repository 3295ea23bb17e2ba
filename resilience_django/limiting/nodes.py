"""Redis Cluster: one core breaker per master, so a dead master sends only its slots local
(docs/redis.md#redis-cluster).  The request path reads ``breakers`` and ``down`` (a frozenset,
replaced whole) without the lock; both are empty while all is well (no node looked up).
"""

from __future__ import annotations

import contextlib
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
        self._announce(True, f"cluster node {node} failed {self._settings.failures} calls", elapsed)

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
            key = self._samples[node]  # set before the node could go down
            start = _perf()
            try:
                client.exists(key)
                back = _perf() - start <= budget
            except Exception:  # dead, unreachable or CLUSTERDOWN: still down
                back = False
            successes = self._successes[node] = self._successes.get(node, 0) + 1 if back else 0
            if successes < self._settings.recovery_probes:
                continue
            owner = None
            with contextlib.suppress(Exception):  # no master for the slot
                owner = str(client.get_node_from_key(key).name)
            moved = owner not in (None, node)
            why = f"its slots are served by {owner}" if moved else "it answers again"
            with self._lock:
                breaker = self.breakers.pop(node, None)
                self.down = self.down - {node}
                if moved:
                    self.retired = self.retired | {node}
            if breaker is not None:
                breaker.reset(why)  # reported as a breaker transition too
            self._announce(False, f"cluster node {node}: {why}", _perf() - start)
