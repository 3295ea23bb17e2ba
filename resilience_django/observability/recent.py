"""This process's rejections and deadline misses: totals and the last minute, per second.

Prometheus counters only know totals, and only in the process that holds them;
the dashboard must show the fleet's last minute the moment it opens.  So each
process keeps one small ring of per-second counts per label set, and its fleet
thread publishes them (``fleet.py``).  Bounded: at most ``max_keys`` label sets
(past it, still counted by Prometheus) and ``span`` buckets each.  One lock per
counted event: events are rejections and 504s, never admitted requests.

>>> counts = RecentCounts(clock=lambda: 1000.5)
>>> counts.add(("api", "rate_limited")); counts.add(("api", "rate_limited"))
>>> counts.report()
[{'labels': ['api', 'rate_limited'], 'total': 2, 'recent': [[1000, 2]]}]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["RecentCounts", "deadlines", "rejections", "window_counts"]

SPAN = 60


class _Entry:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.total = 0
        # [second, count], oldest first; at most `span` of them.
        self.buckets: deque[list[int]] = deque()


class RecentCounts:
    """Event counts per label set: the total, and per second over the last ``span`` seconds."""

    def __init__(
        self, *, span: int = SPAN, max_keys: int = 1000, clock: Callable[[], float] = time.time
    ) -> None:
        self.span = span
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
            if buckets and buckets[-1][0] == second:
                buckets[-1][1] += 1
                return
            buckets.append([second, 1])
            while buckets[0][0] <= second - self.span:
                buckets.popleft()

    def report(self) -> list[dict[str, Any]]:
        """JSON-ready: ``labels``, ``total`` and ``recent`` ([second, count], last ``span`` s)."""
        oldest = int(self.clock()) - self.span
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


def window_counts(
    reports: Iterable[Any], *, now: float, window: float = SPAN
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Sum several processes' reports: label set -> (count in the last ``window`` s, total).

    A malformed entry (a process of another version, a hand-written store value)
    is skipped, never fatal: the dashboard must not fail on one bad report.
    """
    oldest = now - window
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
