"""How late an event loop runs its callbacks: ``resilience_event_loop_lag_seconds``, a report
about this worker, never a verdict about Redis (docs/fallback.md, "Busy workers")."""

from __future__ import annotations

import asyncio
import collections
import weakref
from weakref import WeakKeyDictionary

from . import metrics

__all__ = ["LoopLagSampler", "watch"]

_samplers: WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLagSampler] = WeakKeyDictionary()


class LoopLagSampler:
    """Measures the lateness of one timer per ``interval`` on one loop."""

    __slots__ = ("__weakref__", "_due", "_loop", "_recent", "interval", "lag")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.25) -> None:
        # Weakly: the loop's timers hold this sampler, which must not keep a finished loop alive.
        self._loop = weakref.ref(loop)
        self.interval = interval
        self._recent: collections.deque[float] = collections.deque(maxlen=8)
        self.lag = 0.0  # the largest lateness of the last 8 samples, in seconds
        self._due = loop.time() + interval
        loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            return
        now = loop.time()
        self._recent.append(max(0.0, now - self._due))
        self.lag = max(self._recent)
        metrics.event_loop_lag(self.lag)
        # From now: a blocked loop gets one late sample, not a burst of catch-up ones.
        self._due = now + self.interval
        loop.call_at(self._due, self._tick)


def watch(loop: asyncio.AbstractEventLoop) -> LoopLagSampler:
    """The sampler of ``loop``, started on first call."""
    sampler = _samplers.get(loop)
    if sampler is None:
        sampler = _samplers[loop] = LoopLagSampler(loop)
    return sampler
