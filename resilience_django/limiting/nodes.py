"""Per-node health on Redis Cluster: a dead master sends only its own slots local.

On a single Redis the ``HybridLimiter`` has one breaker.  On a cluster one
breaker would send every key of every slot to local limiting when one
master dies; instead each master (by redis-py's node name, ``host:port``)
has its own count of failures, with the same rules as the whole-backend
breaker (``FAILURES`` failures of calls that started after the previous
counted one; see ``HybridLimiter._failed``).  A request whose keys live on
a master that is *down* is decided locally; every other request stays on
Redis, exact.  A request whose rules key on several clients is judged by
its first rule's slot.

A down master comes back when the probe thread, ``RECOVERY_PROBES`` times in
a row, gets an answer within the budget to a read (``EXISTS``) of a key that
failed there, routed by the cluster client to whichever master holds the
key's slot *now*: the old master back on its feet, or the replica that took
over (failover is over).  In the second case the old name is *retired*:
the clients' topology may still send a call or two there before redis-py
refreshes it (one failed call each, decided locally), and such failures are
not counted, so a finished failover cannot trip the node again.  So a master
that dies under load switches each worker to local for its slots once and
back once.  A ``PING`` would not do: while a master is down, Redis Cluster
(with ``cluster-require-full-coverage yes``, its default) answers every
keyed command on every node with ``CLUSTERDOWN``, and ``PING`` still works.

Concurrency: ``failed`` and ``probe`` take the lock; the request path reads
``down`` (a frozenset, replaced whole) without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["NodeHealth"]

_perf = time.perf_counter


class _Node:
    __slots__ = ("counted_at", "failures", "successes")

    def __init__(self) -> None:
        self.failures = 0
        self.successes = 0
        self.counted_at = float("-inf")


class NodeHealth:
    """Which cluster masters are down for this process, and when they come back."""

    __slots__ = (
        "_announce",
        "_failures",
        "_lock",
        "_nodes",
        "_recovery",
        "_samples",
        "down",
        "retired",
        "suspects",
    )

    def __init__(
        self,
        *,
        failures: int,
        recovery_probes: int,
        announce: Callable[[bool, str, float], None],
    ) -> None:
        self._failures = failures
        self._recovery = recovery_probes
        self._announce = announce
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        # A key that failed on each down node, for the probe to read.
        self._samples: dict[str, bytes] = {}
        self.down: frozenset[str] = frozenset()
        self.retired: frozenset[str] = frozenset()
        # How many nodes have failures counted: while 0, an answered call
        # need not find its node to reset a count (the common case).
        self.suspects = 0

    def failed(self, node: str, start: float, key: bytes) -> None:
        """A call to ``node`` (for ``key``) that started at ``start`` failed; trip the
        node at ``FAILURES``."""
        now = _perf()
        with self._lock:
            if node in self.retired or node in self.down:
                return
            self._samples[node] = key
            state = self._nodes.setdefault(node, _Node())
            if start < state.counted_at:
                return  # the same stall as the failure counted last
            state.counted_at = now
            if not state.failures:
                self.suspects += 1
            state.failures += 1
            if state.failures < self._failures:
                return
            state.successes = 0
            self.down = self.down | {node}
        self._announce(True, f"cluster node {node} failed {self._failures} calls", now - start)

    def answered(self, node: str | None) -> None:
        """A call to ``node`` was answered in time: its failures are no longer in a row."""
        state = self._nodes.get(node) if node is not None else None
        if state is not None and state.failures and node not in self.down:
            with self._lock:
                if state.failures:
                    state.failures = 0
                    self.suspects -= 1

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
            owner = _owner(client, key) if back else None
            with self._lock:
                state = self._nodes.setdefault(node, _Node())
                state.successes = state.successes + 1 if back else 0
                if state.successes < self._recovery:
                    continue
                self.down = self.down - {node}
                if state.failures:
                    self.suspects -= 1
                state.failures = 0
                state.successes = 0
                retired = owner is not None and owner != node
                if retired:
                    self.retired = self.retired | {node}
            why = f"its slots are served by {owner}" if retired else "it answers again"
            self._announce(False, f"cluster node {node}: {why}", _perf() - start)

    def health(self) -> dict[str, Any]:
        return {"nodes_down": sorted(self.down)}


def _owner(client: Any, key: bytes) -> str | None:
    try:
        node = client.get_node_from_key(key)
    except Exception:  # no master for the slot
        return None
    return None if node is None else str(node.name)
