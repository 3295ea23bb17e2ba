"""An adaptive concurrency limit that follows measured latency.

The controller is Netflix concurrency-limits' Gradient2 with its published
defaults (initial limit 20, minimum 20, maximum 200, smoothing 0.2, long
window 600 samples, RTT tolerance 1.5 from the earlier Gradient2 releases,
queue headroom ``sqrt(limit)`` as in the original Gradient limit)::

    gradient  = clamp(tolerance * baseline_rtt / rtt, 0.5, 1.0)
    new_limit = gradient * limit + queue_size(limit)
    limit     = limit * (1 - smoothing) + new_limit * smoothing

Samples are averaged over a window (``window`` seconds and at least
``window_samples`` samples, as Netflix's ``WindowedLimit`` and Envoy's
100 ms update interval do) before each step: stepping on every sample lets
the limit grow many times over before the first extra request's latency
comes back, and it oscillates.

One change, taken from Envoy's adaptive concurrency filter: Gradient2's
baseline is an exponential average of *all* samples, so under sustained
overload it creeps up to the overloaded latency, the gradient returns to 1
and the limit ratchets up to the maximum.  Here the baseline is measured by a
periodic *probe* (every ``probe_interval`` seconds the limit drops to the
floor for ``probe_samples`` samples, so requests run without queueing) and
between probes it may only move *down*, averaged over ``long_window``
samples.  Under overload the limit therefore settles where latency is
``tolerance`` times the no-load latency, i.e. near ``tolerance * capacity``
plus the small headroom, instead of drifting to the maximum.

Pure Python and single-threaded: the bulkhead feeds it samples from one
thread at a time (see ``bulkhead.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from ..clock import Clock, monotonic

__all__ = ["AdaptiveLimit"]


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
        "_long_alpha",
        "_next_probe_at",
        "_probe_count",
        "_probe_sum",
        "_random",
        "_window_count",
        "_window_inflight",
        "_window_start",
        "_window_sum",
        "initial_limit",
        "jitter",
        "max_limit",
        "min_limit",
        "probe_interval",
        "probe_samples",
        "queue_size",
        "rtt_tolerance",
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
        rtt_tolerance: float = 1.5,
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
        if rtt_tolerance < 1:
            raise ValueError("rtt_tolerance must be >= 1")
        self.initial_limit = max(min_limit, min(max_limit, initial_limit))
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.smoothing = smoothing
        self.rtt_tolerance = rtt_tolerance
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
        # Start in a probe: without a baseline there is nothing to compare with.
        self._probe_count = 0
        self._probe_sum = 0.0
        self._next_probe_at = math.inf
        self._window_start = clock()
        self._window_sum = 0.0
        self._window_count = 0
        self._window_inflight = 0

    @property
    def limit(self) -> int:
        """The concurrency limit in force now (the floor while probing)."""
        if self.probing:
            return self.min_limit
        return int(self._estimate)

    @property
    def probing(self) -> bool:
        return self._probe_count < self.probe_samples

    @property
    def baseline_rtt(self) -> float | None:
        """The no-load latency estimate, or ``None`` before the first probe ends."""
        return self._baseline

    def update(self, rtt: float, inflight: int) -> int:
        """Take one finished request's latency and the in-flight count; return the limit."""
        if self.probing:
            # Requests admitted before the limit dropped still carry queueing
            # delay; only samples taken at the floor measure the no-load latency.
            if inflight <= self.min_limit:
                self._probe_sum += rtt
                self._probe_count += 1
                if self._probe_count == self.probe_samples:
                    self._end_probe()
            return self.limit
        now = self._clock()
        if now >= self._next_probe_at:
            self._probe_count = 0
            self._probe_sum = 0.0
            return self.min_limit
        self._window_sum += rtt
        self._window_count += 1
        if inflight > self._window_inflight:
            self._window_inflight = inflight
        if self._window_count < self.window_samples or now - self._window_start < self.window:
            return int(self._estimate)
        self._step(self._window_sum / self._window_count, self._window_inflight)
        self._window_start = now
        self._window_sum = 0.0
        self._window_count = 0
        self._window_inflight = 0
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
            return
        gradient = 1.0 if rtt <= 0 else max(0.5, min(1.0, self.rtt_tolerance * baseline / rtt))
        new = gradient * estimate + self.queue_size(estimate)
        new = estimate * (1 - self.smoothing) + new * self.smoothing
        self._estimate = max(float(self.min_limit), min(float(self.max_limit), new))

    def _end_probe(self) -> None:
        measured = self._probe_sum / self._probe_count
        first = self._baseline is None
        self._baseline = measured
        if first:
            self._estimate = float(self.initial_limit)
        # Jitter keeps a fleet of processes from probing (and dropping to the
        # floor) at the same moment.
        spread = self.probe_interval * self.jitter * (2 * self._random() - 1)
        now = self._clock()
        self._next_probe_at = now + self.probe_interval + spread
        self._window_start = now
        self._window_sum = 0.0
        self._window_count = 0
        self._window_inflight = 0

    def __repr__(self) -> str:
        return f"<AdaptiveLimit limit={self.limit} baseline={self._baseline}>"
