"""An adaptive concurrency limit that follows measured latency: a gradient controller after
Netflix's Gradient2 and Envoy's adaptive concurrency filter (docs/shedding.md gives the formula).
Single-threaded: the bulkhead feeds it samples from one thread at a time."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean

from ..clock import Clock, monotonic

__all__ = ["AdaptiveLimit"]

# Envoy re-measures its minRTT after this many consecutive windows at the minimum limit.
FLOOR_WINDOWS_BEFORE_PROBE = 5


@dataclass(kw_only=True, eq=False, repr=False)
class AdaptiveLimit:
    """Gradient controller for a concurrency limit; feed it ``update(rtt, inflight)``.

    >>> from resilience_django.clock import ManualClock
    >>> limit = AdaptiveLimit(min_limit=5, initial_limit=10, clock=ManualClock())
    >>> limit.limit        # starts by probing at the floor
    5
    """

    initial_limit: int = 20
    min_limit: int = 20
    max_limit: int = 200
    smoothing: float = 0.2
    buffer: float = 0.1
    long_window: int = 600
    queue_size: Callable[[float], float] = math.sqrt
    probe_interval: float = 60.0
    probe_samples: int = 50
    jitter: float = 0.1
    window: float = 0.1
    window_samples: int = 10
    clock: Clock = monotonic
    random_: Callable[[], float] = random.random
    #: The no-load latency estimate, or ``None`` before the first probe ends.
    baseline_rtt: float | None = field(default=None, init=False)
    # Start in a probe: without a baseline there is nothing to compare with.
    probing: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        # Without a buffer, noise alone reads as overload and the limit decays.
        if self.buffer <= 0:
            raise ValueError("buffer must be > 0")
        self.initial_limit = max(self.min_limit, min(self.max_limit, self.initial_limit))
        self.probe_samples = max(1, self.probe_samples)
        self.window_samples = max(1, self.window_samples)
        self._long_alpha = 2.0 / (self.long_window + 1)
        self._estimate = float(self.initial_limit)
        self._floor_windows = 0
        self._probe: list[float] = []
        self._next_probe_at = math.inf
        self._window: list[float] = []
        self._window_start = self.clock()
        self._window_inflight = 0

    @property
    def limit(self) -> int:
        """The concurrency limit in force now (the floor while probing)."""
        return self.min_limit if self.probing else int(self._estimate)

    def update(self, rtt: float, inflight: int) -> int:
        """Take a finished request's latency and the requests in flight (itself included)."""
        if self.probing:
            # Only samples taken at the floor measure the no-load latency.
            if inflight <= self.min_limit:
                self._probe.append(rtt)
                if len(self._probe) >= self.probe_samples:
                    self._end_probe()
            return self.limit
        now = self.clock()
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
            # Envoy's rule: pinned to the floor, the baseline may be stale: measure it again.
            return self._start_probe()
        return int(self._estimate)

    def _step(self, rtt: float, inflight: int) -> None:
        baseline = self.baseline_rtt
        assert baseline is not None  # set by _end_probe
        if rtt < baseline:
            self.baseline_rtt = baseline = baseline + (rtt - baseline) * self._long_alpha
        estimate = self._estimate
        # App-limited: few requests in flight say nothing about capacity (as in Gradient2).
        if inflight < estimate / 2:
            self._floor_windows = 0  # nor do they say the floor is too high: the run ends
            return
        target = baseline * (1 + self.buffer)
        if rtt <= target:
            # Latency says there may be room: probe upwards by the headroom.
            new = estimate + self.queue_size(estimate)
        else:
            # Past the knee: the limit at which latency would be back at the target.
            new = estimate * max(0.5, target / rtt)
        new = estimate * (1 - self.smoothing) + new * self.smoothing
        self._estimate = max(float(self.min_limit), min(float(self.max_limit), new))
        self._floor_windows = self._floor_windows + 1 if self.limit <= self.min_limit else 0

    def _start_probe(self) -> int:
        self.probing = True
        self._probe = []
        self._floor_windows = 0
        return self.min_limit

    def _end_probe(self) -> None:
        self.baseline_rtt = fmean(self._probe)
        self.probing = False
        self._probe = []
        # Jitter: a fleet of processes does not drop to the floor all at once.
        spread = self.probe_interval * self.jitter * (2 * self.random_() - 1)
        now = self.clock()
        self._next_probe_at = now + self.probe_interval + spread
        self._start_window(now)

    def _start_window(self, now: float) -> None:
        self._window = []
        self._window_start = now
        self._window_inflight = 0

    def __repr__(self) -> str:
        return f"<AdaptiveLimit limit={self.limit} baseline={self.baseline_rtt}>"
