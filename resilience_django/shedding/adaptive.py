"""An adaptive concurrency limit that follows measured latency.

The controller is a gradient controller in the line of Netflix
concurrency-limits' Gradient2 and Envoy's adaptive concurrency filter,
tuned so that under overload the limit settles near the server's real
capacity rather than well above it::

    target    = baseline_rtt * (1 + buffer)                   buffer 0.1
    new_limit = limit + sqrt(limit)                if rtt <= target   (room: probe upwards)
              = limit * max(0.5, target / rtt)     otherwise          (past the knee)
    limit     = limit * (1 - smoothing) + new_limit * smoothing       smoothing 0.2

with Gradient2's published defaults elsewhere (initial limit 20, minimum 20,
maximum 200, smoothing 0.2, long window 600, ``sqrt(limit)`` headroom) and
Envoy's for the baseline (a probe of 50 samples every 60 s with jitter).

Why this shape.  Past the capacity ``C`` a server's latency grows in
proportion to what is in flight (``rtt = baseline * limit / C``), so
``limit * target / rtt`` *is* the limit at which latency meets the target:
``(1 + buffer) * C``.  Gradient2 and Envoy add the ``sqrt(limit)`` headroom on
every step, overloaded or not, which moves the fixed point to ``(1 + buffer)
* C + sqrt(limit)``: with Gradient2's tolerance of 1.5 that is 1.5x the
capacity plus the headroom, with Envoy's 25 % buffer still 1.25x plus the
headroom (about 1.5x at a capacity of 20).  Here the headroom is only added
while latency is within the target, to find room that may have appeared, and
the buffer is 10 %: the limit settles between ``1.1 * C`` and one headroom
step above, and admitted requests wait about a tenth of their service time
in the server's own queue.  A smaller buffer would chase noise.

Samples are averaged over a window (``window`` seconds and at least
``window_samples`` samples, as Netflix's ``WindowedLimit`` and Envoy's 100 ms
update interval do) before each step: stepping on every sample lets the limit
grow many times over before the first extra request's latency comes back.
The *mean*, not a percentile such as Envoy's default p50: by Little's law the
mean latency is what is in flight over the throughput, which is what makes
``limit * target / rtt`` land on the capacity.  A median can hide the queue:
when slots free in bursts (service times alike, started together) a third
of the requests can wait a whole service time while the median still reads
the no-load latency, and the limit then settles well above the capacity.

The baseline is Envoy's periodic minimum-RTT measurement, not Gradient2's
average of all samples (which under sustained overload creeps up to the
overloaded latency, so the gradient returns to 1 and the limit ratchets to
the maximum): every ``probe_interval`` seconds (with jitter) the limit drops
to the floor for ``probe_samples`` samples, so requests run without queueing,
and their mean is the new baseline.  Between probes it may only move
*down*, averaged over ``long_window`` windows.  As in Envoy, five windows
in a row with the limit at the floor start a probe at once: the work may
have got slower (a slower database, say), which the old baseline would read
as overload for up to a minute.  A probe taken while the
process is cold and busy shedding an overload reads high, and the limit
rests that much higher until the next probe (docs/shedding.md).

Pure Python and single-threaded: the bulkhead feeds it samples from one
thread at a time (see ``bulkhead.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from statistics import fmean

from ..clock import Clock, monotonic

__all__ = ["AdaptiveLimit"]

# Envoy's adaptive concurrency filter re-measures its minRTT after this many
# consecutive windows with the limit at its minimum.
FLOOR_WINDOWS_BEFORE_PROBE = 5


class AdaptiveLimit:
    """Gradient controller for a concurrency limit; feed it ``update(rtt, inflight)``.

    >>> from resilience_django.clock import ManualClock
    >>> limit = AdaptiveLimit(min_limit=5, initial_limit=10, clock=ManualClock())
    >>> limit.limit        # starts by probing at the floor
    5
    """

    __slots__ = (
        "_baseline",
        "_clock",
        "_estimate",
        "_floor_windows",
        "_long_alpha",
        "_next_probe_at",
        "_probe",
        "_probing",
        "_random",
        "_window",
        "_window_inflight",
        "_window_start",
        "buffer",
        "initial_limit",
        "jitter",
        "max_limit",
        "min_limit",
        "probe_interval",
        "probe_samples",
        "queue_size",
        "smoothing",
        "window",
        "window_samples",
    )

    def __init__(
        self,
        *,
        initial_limit: int = 20,
        min_limit: int = 20,
        max_limit: int = 200,
        smoothing: float = 0.2,
        buffer: float = 0.1,
        long_window: int = 600,
        queue_size: Callable[[float], float] = math.sqrt,
        probe_interval: float = 60.0,
        probe_samples: int = 50,
        jitter: float = 0.1,
        window: float = 0.1,
        window_samples: int = 10,
        clock: Clock = monotonic,
        random_: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        # Without a buffer, sampling noise alone reads as overload half the
        # time and the only-down baseline sinks below the typical latency: the
        # limit decays.
        if buffer <= 0:
            raise ValueError("buffer must be > 0")
        self.initial_limit = max(min_limit, min(max_limit, initial_limit))
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.smoothing = smoothing
        self.buffer = buffer
        self.queue_size = queue_size
        self.probe_interval = probe_interval
        self.probe_samples = max(1, probe_samples)
        self.jitter = jitter
        self.window = window
        self.window_samples = max(1, window_samples)
        self._clock = clock
        self._random = random_
        self._long_alpha = 2.0 / (long_window + 1)
        self._baseline: float | None = None
        self._estimate = float(self.initial_limit)
        self._floor_windows = 0
        # Start in a probe: without a baseline there is nothing to compare with.
        self._probing = True
        self._probe: list[float] = []
        self._next_probe_at = math.inf
        self._window: list[float] = []
        self._window_start = clock()
        self._window_inflight = 0

    @property
    def limit(self) -> int:
        """The concurrency limit in force now (the floor while probing)."""
        if self._probing:
            return self.min_limit
        return int(self._estimate)

    @property
    def probing(self) -> bool:
        return self._probing

    @property
    def baseline_rtt(self) -> float | None:
        """The no-load latency estimate, or ``None`` before the first probe ends."""
        return self._baseline

    def update(self, rtt: float, inflight: int) -> int:
        """Take one finished request's latency and the requests in flight as it
        finished, itself included; return the limit."""
        if self._probing:
            # Requests admitted before the limit dropped still carry queueing
            # delay; only samples taken at the floor measure the no-load latency.
            if inflight <= self.min_limit:
                self._probe.append(rtt)
                if len(self._probe) >= self.probe_samples:
                    self._end_probe()
            return self.limit
        now = self._clock()
        if now >= self._next_probe_at:
            return self._start_probe()
        self._window.append(rtt)
        if inflight > self._window_inflight:
            self._window_inflight = inflight
        if len(self._window) < self.window_samples or now - self._window_start < self.window:
            return int(self._estimate)
        self._step(fmean(self._window), self._window_inflight)
        self._start_window(now)
        if self._floor_windows >= FLOOR_WINDOWS_BEFORE_PROBE:
            # Envoy's rule: a limit pinned to the floor may mean the baseline
            # is stale (the work got slower, which no limit can fix), not that
            # the server is overloaded; measure it again now, not in a minute.
            return self._start_probe()
        return int(self._estimate)

    def _step(self, rtt: float, inflight: int) -> None:
        baseline = self._baseline
        assert baseline is not None  # set by _end_probe
        if rtt < baseline:
            self._baseline = baseline = baseline + (rtt - baseline) * self._long_alpha
        estimate = self._estimate
        # App-limited: few requests in flight say nothing about capacity, so
        # do not grow on them (as Gradient2 does).
        if inflight < estimate / 2:
            self._floor_windows = 0  # nor do they say the floor is too high: the run ends
            return
        target = baseline * (1 + self.buffer)
        if rtt <= target:
            # Latency says there may be room: probe upwards by the headroom.
            new = estimate + self.queue_size(estimate)
        else:
            # Past the knee latency grows with the limit, so this is the limit
            # at which it would be back at the target.  No headroom on top:
            # added here it would hold the limit at (1 + buffer) x capacity
            # + sqrt(limit) for good.
            new = estimate * max(0.5, target / rtt)
        new = estimate * (1 - self.smoothing) + new * self.smoothing
        self._estimate = max(float(self.min_limit), min(float(self.max_limit), new))
        self._floor_windows = self._floor_windows + 1 if self.limit <= self.min_limit else 0

    def _start_probe(self) -> int:
        self._probing = True
        self._probe = []
        self._floor_windows = 0
        return self.min_limit

    def _end_probe(self) -> None:
        first = self._baseline is None
        self._baseline = fmean(self._probe)
        self._probing = False
        self._probe = []
        if first:
            self._estimate = float(self.initial_limit)
        # Jitter keeps a fleet of processes from probing (and dropping to the
        # floor) at the same moment.
        spread = self.probe_interval * self.jitter * (2 * self._random() - 1)
        now = self._clock()
        self._next_probe_at = now + self.probe_interval + spread
        self._start_window(now)

    def _start_window(self, now: float) -> None:
        self._window = []
        self._window_start = now
        self._window_inflight = 0

    def __repr__(self) -> str:
        return f"<AdaptiveLimit limit={self.limit} baseline={self._baseline}>"
