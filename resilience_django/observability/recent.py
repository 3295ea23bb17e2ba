"""This process's rejections and deadline misses: totals and per-second counts over the last
minute, which its fleet thread publishes for the dashboard (docs/admin.md: Prometheus counters
know only totals, and only in their process).  Bounded: ``max_keys`` label sets (past it, still
counted by Prometheus), ``SPAN`` buckets each.  One lock per counted event: events are rejections
and 504s, never admitted requests."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecentCounts", "deadlines", "rejections", "window_counts"]

SPAN = 60


@dataclass(slots=True)
class _Entry:
    total: int = 0
    # [second, count], oldest first; at most SPAN of them.
    buckets: deque[list[int]] = field(default_factory=deque)


class RecentCounts:
    """Event counts per label set: the total, and per second over the last ``SPAN`` seconds."""

    def __init__(self, *, max_keys: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.max_keys = max_keys
        # Wall-clock seconds: buckets from several hosts are summed by second.
        self.clock = clock
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._lock = threading.Lock()

    def add(self, labels: tuple[str, ...]) -> None:
        second = int(self.clock())
        with self._lock:
            entry = self._entries.get(labels)
            if entry is None:
                if len(self._entries) >= self.max_keys:
                    return
                entry = self._entries[labels] = _Entry()
            entry.total += 1
            buckets = entry.buckets
            while buckets and buckets[-1][0] > second:
                # The wall clock was stepped back: buckets "from the future" would never
                # age out below (and the deque would grow a bucket a second until then).
                buckets.pop()
            if buckets and buckets[-1][0] == second:
                buckets[-1][1] += 1
                return
            buckets.append([second, 1])
            while buckets[0][0] <= second - SPAN:
                buckets.popleft()

    def report(self) -> list[dict[str, Any]]:
        """JSON-ready: ``labels``, ``total`` and ``recent`` ([second, count], last ``SPAN`` s)."""
        oldest = int(self.clock()) - SPAN
        with self._lock:
            return [
                {
                    "labels": list(labels),
                    "total": entry.total,
                    "recent": [[s, n] for s, n in entry.buckets if s > oldest],
                }
                for labels, entry in self._entries.items()
            ]

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._entries.clear()


def window_counts(reports: Iterable[Any], *, now: float) -> dict[tuple[str, ...], tuple[int, int]]:
    """Sum several processes' reports: label set -> (count in the last ``SPAN`` s, total).
    A malformed entry (another version's, a hand-written one) is skipped, never fatal."""
    oldest = now - SPAN
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    for report in reports:
        if not isinstance(report, list | tuple):
            continue
        for item in report:
            try:
                labels = tuple(str(label) for label in item["labels"])
                total = int(item["total"])
                recent = sum(int(n) for s, n in item["recent"] if float(s) > oldest)
            except (KeyError, TypeError, ValueError):
                continue
            count, summed = out.get(labels, (0, 0))
            out[labels] = (count + recent, summed + total)
    return out


# The process-wide tallies metrics.py feeds and the fleet thread publishes.
rejections = RecentCounts()
deadlines = RecentCounts()
