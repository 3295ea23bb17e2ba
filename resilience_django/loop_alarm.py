"""Cancel a task at its deadline with one timer per event loop, not one per request (why and
how: docs/deadlines.md, "What happens at the deadline"; docs/fallback.md, "Busy workers")."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from typing import Any

__all__ = ["SETTLE_CHECKS", "SETTLE_STEP", "Alarm", "AlarmClock", "alarm_clock"]

# A settling alarm's grace: this many checks, each SETTLE_STEP after the last one ran.
SETTLE_CHECKS = 8
SETTLE_STEP = 0.001


class Alarm:
    """One armed deadline: cancels ``task`` at ``when`` (loop time) unless disarmed."""

    __slots__ = ("_clock", "cancelling", "fired", "settle", "task", "when")

    def __init__(
        self, clock: AlarmClock, task: asyncio.Task[Any], when: float, settle: bool = False
    ) -> None:
        self._clock = clock
        self.task: asyncio.Task[Any] | None = task
        self.when = when
        self.fired = False
        self.settle = settle
        # Cancellations already requested when armed: ours is the one past them.
        self.cancelling = task.cancelling()

    def reschedule(self, when: float) -> None:
        """Move the alarm (loop thread only); a fired or disarmed alarm stays as it is."""
        if self.task is None or self.fired:
            return
        self.when = when
        self._clock._push(self, when)

    def close(self, task: asyncio.Task[Any]) -> bool:
        """Disarm, however the work ended; ``True``: it fired and the work swallowed the
        ``CancelledError`` (the request is taken back, as ``asyncio.timeout`` does)."""
        swallowed = self.fired
        if swallowed:
            self.fired = False
            task.uncancel()
        self.task = None  # and a done task holds its result: let it go
        return swallowed

    def _settle(self, when: float, checks: int) -> None:
        if self.task is None or self.fired or when != self.when:
            return  # disarmed, fired, or moved meanwhile
        loop = self._clock._loop
        if checks >= SETTLE_CHECKS:
            # One more turn: a reply read in this turn wakes its task in the next.
            loop.call_soon(self._fire, when)
        else:
            loop.call_later(SETTLE_STEP, self._settle, when, checks + 1)

    def _fire(self, when: float) -> None:
        task = self.task
        if task is None or self.fired or when != self.when:
            return  # disarmed, fired, or moved meanwhile
        self.fired = True
        self.task = None
        task.cancel()

    def fired_for(self, task: asyncio.Task[Any]) -> bool:
        """After ``CancelledError``: was it this alarm's cancellation, and only it?  Takes
        the request back (``uncancel``), like ``asyncio.timeout``'s exit."""
        if not self.fired:
            return False
        self.fired = False  # uncancel once, whatever the caller asks later
        return task.uncancel() <= self.cancelling


class AlarmClock:
    """Every armed ``Alarm`` of one event loop, behind one loop timer."""

    __slots__ = ("_compact_at", "_heap", "_loop", "_seq", "_timer", "_wake_at")

    _MIN_COMPACT = 1024

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Alarm]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._wake_at = float("inf")
        self._compact_at = self._MIN_COMPACT

    def arm(self, task: asyncio.Task[Any], when: float, *, settle: bool = False) -> Alarm:
        """An alarm that cancels ``task`` at loop time ``when`` (``settle``: after a grace)."""
        alarm = Alarm(self, task, when, settle)
        self._push(alarm, when)
        return alarm

    def _push(self, alarm: Alarm, when: float) -> None:
        heap = self._heap
        if len(heap) >= self._compact_at:
            self._compact()
        heapq.heappush(heap, (when, next(self._seq), alarm))
        if when < self._wake_at:
            if self._timer is not None:
                self._timer.cancel()
            self._wake_at = when
            self._timer = self._loop.call_at(when, self._ring)

    def _compact(self) -> None:
        live = [e for e in self._heap if e[2].task is not None and e[0] == e[2].when]
        heapq.heapify(live)
        self._heap = live
        self._compact_at = max(self._MIN_COMPACT, 2 * len(live))

    def _ring(self) -> None:
        # The loop runs a timer up to its clock resolution early: what is due now counts.
        now = max(self._loop.time(), self._wake_at)
        self._timer = None
        self._wake_at = float("inf")
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, alarm = heapq.heappop(heap)
            # _settle and _fire ignore a stale entry (the alarm moved, fired or was disarmed).
            if alarm.settle:
                alarm._settle(when, 0)
            else:
                alarm._fire(when)
        if heap:
            self._wake_at = heap[0][0]
            self._timer = self._loop.call_at(self._wake_at, self._ring)


# Not a WeakKeyDictionary: a clock's pending timer refers to its loop (its own key).
_clocks: dict[asyncio.AbstractEventLoop, AlarmClock] = {}
_clocks_lock = threading.Lock()
# The last loop asked for: a server runs one loop per process.
_last: tuple[asyncio.AbstractEventLoop | None, AlarmClock | None] = (None, None)


def alarm_clock(loop: asyncio.AbstractEventLoop) -> AlarmClock:
    """The ``AlarmClock`` of ``loop`` (call on the loop's thread)."""
    global _last
    last_loop, clock = _last
    if last_loop is loop and clock is not None:
        return clock
    with _clocks_lock:  # loops in several threads (async_to_sync) may ask at once
        for old in [old for old in _clocks if old.is_closed()]:
            del _clocks[old]
        clock = _clocks.get(loop)
        if clock is None:
            clock = _clocks[loop] = AlarmClock(loop)
    _last = (loop, clock)
    return clock
