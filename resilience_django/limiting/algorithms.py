"""The three limiting algorithms, as pure kernels over a small per-key state list.

A kernel is built once per policy (and share) by ``kernel_for`` and knows nothing of keys,
stores, locks, Django or the wall clock.  Its steps (``advance``, ``fits``, ``consume``,
``acquire``, ``info``, ``outcome``), states, formulas and bounds: docs/limits.md ("Algorithms
and their bounds"); the Redis Lua script mirrors these semantics exactly."""

from __future__ import annotations

from math import floor
from typing import Any

from .decision import Algorithm, LimitCheck, Policy, RuleOutcome

__all__ = ["SLIDING_WINDOW_BUCKETS", "Gcra", "Kernel", "SlidingWindow", "TokenBucket", "kernel_for"]

SLIDING_WINDOW_BUCKETS = 10
# Slack of a millionth of a token: C requests at one instant all fit although
# C additions of T may round above C * T.
EPSILON = 1e-6

State = list[Any]


def _scaled(value: int, share: float) -> int:
    return value if share == 1.0 else max(1, floor(value * share))


class SlidingWindow:
    """Ring of ``buckets`` per-slot counts, rolled lazily; see docs/limits.md."""

    __slots__ = ("_zeros", "buckets", "limit", "period", "tag", "width")

    def __init__(self, limit: int, period: float, buckets: int = SLIDING_WINDOW_BUCKETS) -> None:
        self.limit = limit
        self.period = period
        self.buckets = buckets
        self.width = period / buckets
        self._zeros = (0,) * buckets
        # In the store key: a rule edited live (another period or bucket count) starts afresh.
        self.tag = f"sw:{period!r}:{buckets}"

    def new_state(self, now: float) -> State:
        # [head, total, oldest, c_0 .. c_{N-1}]; ``oldest`` only moves forward.
        b = floor(now / self.width)
        return [b, 0, b, *self._zeros]

    def advance(self, state: State, now: float) -> None:
        b = floor(now / self.width)
        head = state[0]
        if b <= head:
            return
        n = self.buckets
        if b - head >= n:
            state[3:] = self._zeros
            state[1] = 0
        else:
            total = state[1]
            for j in range(head + 1, b + 1):
                i = j % n + 3
                total -= state[i]
                state[i] = 0
            state[1] = total
        state[0] = b

    def fits(self, state: State, now: float, cost: int) -> bool:
        return bool(state[1] + cost <= self.limit)

    def consume(self, state: State, now: float, cost: int) -> None:
        state[state[0] % self.buckets + 3] += cost
        state[1] += cost

    def refund(self, state: State, now: float, cost: int) -> None:
        # From the newest buckets still in the window, where it was counted.
        self.advance(state, now)
        n = self.buckets
        head = state[0]
        for j in range(head, head - n, -1):
            if cost <= 0:
                break
            i = j % n + 3
            taken = state[i] if state[i] < cost else cost
            state[i] -= taken
            state[1] -= taken
            cost -= taken

    def acquire(self, state: State, now: float, cost: int) -> bool:
        # advance() inlined for the fallback's charge: most calls stay in one bucket.
        if floor(now / self.width) > state[0]:
            self.advance(state, now)
        total = state[1] + cost
        if total > self.limit:
            return False
        state[state[0] % self.buckets + 3] += cost
        state[1] = total
        return True

    def outcome(self, state: State, now: float, check: LimitCheck) -> RuleOutcome:
        cost = check.cost
        head = state[0]
        if floor(now / self.width) > head:
            self.advance(state, now)
            head = state[0]
        total = state[1] + cost
        limit = self.limit
        if total > limit:
            return RuleOutcome(check, False, *self.info(state, now, cost, False))
        n = self.buckets
        state[head % n + 3] += cost
        state[1] = total
        # The oldest non-empty bucket, for the reset time; usually found at once.
        j = state[2]
        if j <= head - n:
            j = head - n + 1
        while j < head and not state[j % n + 3]:
            j += 1
        state[2] = j
        return RuleOutcome(check, True, limit - total, (j + n) * self.width - now, 0.0)

    def info(self, state: State, now: float, cost: int, allowed: bool) -> tuple[int, float, float]:
        head, total = state[0], state[1]
        n, limit = self.buckets, self.limit
        remaining = limit - total if total < limit else 0
        retry_after = self.period if not allowed and cost > limit else 0.0
        if total == 0:
            return remaining, 0.0, retry_after
        j = state[2]
        if j <= head - n:
            j = head - n + 1
        while state[j % n + 3] == 0 and j < head:  # total > 0: a bucket is non-empty
            j += 1
        state[2] = j
        w = self.width
        reset_after = (j + n) * w - now
        if not allowed and cost <= limit:
            # Walk forward until enough of the oldest counts have left for cost.
            need = total + cost - limit
            freed = state[j % n + 3]
            while freed < need:
                j += 1
                freed += state[j % n + 3]
            retry_after = (j + n) * w - now
        return remaining, max(reset_after, 0.0), max(retry_after, 0.0)


class TokenBucket:
    """Tokens refilled continuously up to a capacity; see docs/limits.md."""

    __slots__ = ("capacity", "limit", "period", "rate", "tag")

    def __init__(self, limit: int, period: float, capacity: int) -> None:
        self.limit = limit
        self.period = period
        self.capacity = capacity
        self.rate = limit / period
        self.tag = "tb"

    def new_state(self, now: float) -> State:
        return [float(self.capacity), now]

    def advance(self, state: State, now: float) -> None:
        elapsed = now - state[1]
        if elapsed > 0:
            tokens = state[0] + elapsed * self.rate
            # min() against a lowered capacity too, so a smaller share applies at once.
            state[0] = tokens if tokens < self.capacity else float(self.capacity)
            state[1] = now
        elif state[0] > self.capacity:
            state[0] = float(self.capacity)

    def fits(self, state: State, now: float, cost: int) -> bool:
        return bool(state[0] + EPSILON >= cost)

    def consume(self, state: State, now: float, cost: int) -> None:
        state[0] -= cost

    def refund(self, state: State, now: float, cost: int) -> None:
        self.advance(state, now)
        state[0] = min(state[0] + cost, float(self.capacity))

    def acquire(self, state: State, now: float, cost: int) -> bool:
        self.advance(state, now)
        if state[0] + EPSILON < cost:
            return False
        state[0] -= cost
        return True

    def outcome(self, state: State, now: float, check: LimitCheck) -> RuleOutcome:
        cost = check.cost
        capacity = self.capacity
        tokens, last = state
        # advance(), inlined: refill for the time elapsed, never above capacity.
        if now > last:
            tokens += (now - last) * self.rate
            if tokens > capacity:
                tokens = float(capacity)
            state[1] = now
        elif tokens > capacity:
            tokens = float(capacity)
        state[0] = tokens
        if tokens - cost + EPSILON < 0:
            return RuleOutcome(check, False, *self.info(state, now, cost, False))
        tokens -= cost
        state[0] = tokens
        remaining = floor(tokens + EPSILON)
        return RuleOutcome(
            check, True, remaining if remaining > 0 else 0, (capacity - tokens) / self.rate, 0.0
        )

    def info(self, state: State, now: float, cost: int, allowed: bool) -> tuple[int, float, float]:
        tokens = state[0]
        rate = self.rate
        remaining = floor(tokens + EPSILON)
        reset_after = (self.capacity - tokens) / rate
        retry_after = 0.0
        if not allowed:
            retry_after = self.period if cost > self.capacity else (cost - tokens) / rate
        return max(remaining, 0), max(reset_after, 0.0), max(retry_after, 0.0)


class Gcra:
    """Generic cell rate algorithm: one theoretical arrival time per key."""

    __slots__ = ("capacity", "interval", "limit", "period", "slack", "tag", "tau")

    def __init__(self, limit: int, period: float, capacity: int) -> None:
        self.limit = limit
        self.period = period
        self.capacity = capacity
        self.interval = period / limit
        self.tau = capacity * self.interval
        self.slack = EPSILON * self.interval
        # TAT is in absolute time whatever the period, so only the kind matters.
        self.tag = "gcra"

    def new_state(self, now: float) -> State:
        return [now]

    def advance(self, state: State, now: float) -> None:
        if state[0] < now:
            state[0] = now

    # Tests add costs to ``max(tat, now) - now``, never take ``now`` from a sum: past days of
    # uptime ``now + T - now`` rounds by more than the slack, refusing an idle key its token.
    def fits(self, state: State, now: float, cost: int) -> bool:
        ahead = state[0] - now if state[0] > now else 0.0
        return bool(ahead + cost * self.interval <= self.tau + self.slack)

    def consume(self, state: State, now: float, cost: int) -> None:
        state[0] += cost * self.interval

    def refund(self, state: State, now: float, cost: int) -> None:
        # A TAT pushed back into the past means "idle": advance() clamps it to now.
        state[0] -= cost * self.interval

    def acquire(self, state: State, now: float, cost: int) -> bool:
        tat = state[0] if state[0] > now else now
        step = cost * self.interval
        if tat - now + step > self.tau + self.slack:
            return False
        state[0] = tat + step
        return True

    def outcome(self, state: State, now: float, check: LimitCheck) -> RuleOutcome:
        tat = state[0]
        if tat < now:
            tat = now
        interval = self.interval
        step = check.cost * interval
        wait = tat - now + step
        tau = self.tau
        if wait > tau + self.slack:
            return RuleOutcome(check, False, *self.info(state, now, check.cost, False))
        state[0] = tat + step
        remaining = floor((tau - wait) / interval + EPSILON)
        return RuleOutcome(check, True, remaining if remaining > 0 else 0, wait, 0.0)

    def info(self, state: State, now: float, cost: int, allowed: bool) -> tuple[int, float, float]:
        ahead = state[0] - now if state[0] > now else 0.0
        t = self.interval
        remaining = floor((self.tau - ahead) / t + EPSILON)
        retry_after = 0.0
        if not allowed:
            retry_after = self.period if cost > self.capacity else ahead + cost * t - self.tau
        return max(remaining, 0), ahead, max(retry_after, 0.0)


Kernel = SlidingWindow | TokenBucket | Gcra


def kernel_for(policy: Policy, share: float = 1.0) -> Kernel:
    """Build the kernel of ``policy``, scaled to ``share`` of its limit."""
    rate = policy.rate
    limit = _scaled(rate.limit, share)
    algorithm = Algorithm(policy.algorithm)
    if algorithm is Algorithm.SLIDING_WINDOW:
        return SlidingWindow(limit, rate.period)
    capacity = _scaled(policy.capacity, share)
    if algorithm is Algorithm.TOKEN_BUCKET:
        return TokenBucket(limit, rate.period, capacity)
    return Gcra(limit, rate.period, capacity)
