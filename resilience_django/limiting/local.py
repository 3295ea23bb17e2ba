"""The in-process limiter: a bounded LRU of per-key states behind striped locks.

States keyed by ``(policy, client key)`` in up to 16 shards, each an ``OrderedDict`` LRU of
at most ``max_keys // shards`` keys with its own lock (why: docs/limits.md, "Memory and threads").

Concurrency.  Every path that reads or writes a shard (``decide``,
``adecide``, ``admit``, ``refund``, ``clear``) holds that shard's
``threading.Lock`` for the whole step, from any thread, sync or async:

* Why a lock at all: a step is many bytecodes (find the state, move it to
  the LRU's end, maybe evict, read-modify-write the counts).  Two threads
  interleaved inside one would lose an update (both read the same count and
  both admit) or evict a key while another updates it.  The GIL orders single
  operations, not a sequence of them, and a free-threaded build has no GIL.
* Why the event loop may take it: the lock is held around pure computation,
  about a microsecond, never across an ``await``, so ``adecide`` cannot block
  the loop on I/O and a coroutine never suspends while holding it.  At worst
  the loop waits out another thread's microsecond.
* Why several shards cannot deadlock: a decision over several checks takes
  the locks of the shards involved in ascending shard order, so any two
  decisions that share locks take them in the same order.

What is read without a lock, and why that is safe:

* The clock, read before the lock is taken: two threads may apply their
  ``now`` to a state out of order.  Every kernel treats a ``now`` earlier than
  the state's as "no time has passed" (docs/limits.md), so the cost is
  a few microseconds of refill, never a lost or duplicated admission.
* The compiled-policy cache (``_compiled``): a plain dict whose entries are
  set whole and never changed, so a reader sees an entry or none.  Two
  threads may compile one policy at once; both results are equal and either
  one serves.  An entry is used only if it holds the very ``Policy`` asked
  for (``entry[0] is policy``).
* ``len(limiter)`` sums the shards without their locks: a figure for
  monitoring, not an exact count while requests are deciding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..clock import monotonic
from .algorithms import Kernel, State, kernel_for
from .decision import ALLOW_ALL, Decision, LimitCheck, Policy, RuleOutcome

__all__ = ["LocalLimiter"]


# A compiled policy: (policy, kernel, store-key prefix with the kernel's tag).
_Compiled = tuple[Policy, Kernel, str]
_States = OrderedDict[tuple[str, str], State]


@dataclass(slots=True, eq=False)
class _Shard:
    capacity: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    states: _States = field(default_factory=OrderedDict)


class LocalLimiter:
    """Decide limits in this process.

    >>> from resilience_django.clock import ManualClock
    >>> from resilience_django.units import parse_rate
    >>> limiter = LocalLimiter(clock=ManualClock())
    >>> check = LimitCheck(Policy("login", parse_rate("2/m")), "10.0.0.1")
    >>> [limiter.decide((check,)).allowed for _ in range(3)]
    [True, True, False]
    """

    __slots__ = ("_clock", "_compiled", "_mask", "_shards", "max_keys")

    backend = "local"
    _MAX_COMPILED = 4096

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        # Up to 16 shards, a power of two (a mask picks one), holding at least 64
        # keys each, so a small store is one exact LRU rather than many tiny ones.
        count = 1
        while count < 16 and max_keys // (count * 2) >= 64:
            count *= 2
        self.max_keys = max_keys
        self._mask = count - 1
        self._shards = tuple(_Shard(max_keys // count) for _ in range(count))
        self._clock = clock
        self._compiled: dict[Any, _Compiled] = {}

    def __len__(self) -> int:
        return sum(len(shard.states) for shard in self._shards)

    def clear(self) -> None:
        """Forget every key (tests, and rules reloaded with new semantics)."""
        for shard in self._shards:
            with shard.lock:
                shard.states.clear()

    def _compiled_for(self, policy: Policy, share: float) -> _Compiled:
        cache = self._compiled
        slot = id(policy) if share == 1.0 else (id(policy), share)
        compiled = cache.get(slot)
        if compiled is None or compiled[0] is not policy:
            kernel = kernel_for(policy, share)
            compiled = (policy, kernel, f"{policy.name}\x1f{kernel.tag}")
            if len(cache) >= self._MAX_COMPILED:
                # Policies rebuilt on every settings reload would otherwise pile up.
                cache.clear()
            cache[slot] = compiled
        return compiled

    def decide(self, checks: tuple[LimitCheck, ...], share: float = 1.0) -> Decision:
        """Admit the request iff every check fits, consuming nothing otherwise; ``share``
        scales every policy for the Redis fallback (docs/limits.md)."""
        if len(checks) != 1:
            return self._decide_many(checks, share)
        # One check, nearly every request: written out, one lock, no call but the kernel's.
        check = checks[0]
        policy = check.policy
        compiled = self._compiled.get(id(policy) if share == 1.0 else (id(policy), share))
        if compiled is None or compiled[0] is not policy:
            compiled = self._compiled_for(policy, share)
        _, kernel, prefix = compiled
        key = (prefix, check.key)
        now = self._clock()
        shard = self._shards[hash(key) & self._mask]
        states = shard.states
        with shard.lock:
            state = states.get(key)
            if state is None:
                state = states[key] = kernel.new_state(now)
                if len(states) > shard.capacity:
                    states.popitem(last=False)  # the least recently used key goes
            else:
                states.move_to_end(key)
            outcome = kernel.outcome(state, now, check)
        return Decision(outcome.allowed, (outcome,), "local")

    async def adecide(self, checks: tuple[LimitCheck, ...], share: float = 1.0) -> Decision:
        # No I/O: inline, under the same locks (callers on the loop may call decide).
        return self.decide(checks, share)

    def admit(self, policy: Policy, key: str, cost: int = 1, share: float = 1.0) -> bool:
        """Yes or no for one key, without a ``Decision``: the Redis fallback's charge."""
        _, kernel, prefix = self._compiled_for(policy, share)
        store_key = (prefix, key)
        now = self._clock()
        shard = self._shards[hash(store_key) & self._mask]
        with shard.lock:
            state = _touch(shard, store_key, kernel, now)
            return kernel.acquire(state, now, cost)

    def decide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """Enforced checks all-or-nothing, shadow checks as a group of their own."""
        first = self.decide(checks) if checks else ALLOW_ALL
        return first, (self.decide(shadow) if shadow else None)

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        return self.decide_with_shadow(checks, shadow)

    def refund(self, decision: Decision) -> None:
        """Undo an admitted decision of this store made moments ago: a request whose
        rules span two stores, when the second (Redis) rejects."""
        now = self._clock()
        for outcome in decision.outcomes:
            check = outcome.check
            _, kernel, prefix = self._compiled_for(check.policy, 1.0)
            key = (prefix, check.key)
            shard = self._shards[hash(key) & self._mask]
            with shard.lock:
                state = shard.states.get(key)
                if state is not None:  # evicted meanwhile: nothing left to give back
                    kernel.refund(state, now, check.cost)

    def _decide_many(self, checks: tuple[LimitCheck, ...], share: float) -> Decision:
        if not checks:
            return ALLOW_ALL
        plan: list[tuple[LimitCheck, Kernel, tuple[str, str], _Shard]] = []
        for check in checks:
            _, kernel, prefix = self._compiled_for(check.policy, share)
            key = (prefix, check.key)
            plan.append((check, kernel, key, self._shards[hash(key) & self._mask]))
        # Ascending shard order rules out a deadlock (see the module docstring).
        indexes = sorted({hash(k) & self._mask for _, _, k, _ in plan})
        locks = [self._shards[i].lock for i in indexes]
        now = self._clock()
        for lock in locks:
            lock.acquire()
        try:
            states = [_touch(shard, key, kernel, now) for _, kernel, key, shard in plan]
            admitted = True
            verdicts: list[bool] = []
            snapshots: list[tuple[State, State]] = []
            for (check, kernel, _, _), state in zip(plan, states, strict=True):
                kernel.advance(state, now)
                fits = kernel.fits(state, now, check.cost)
                verdicts.append(fits)
                if not fits:
                    admitted = False
                elif admitted:
                    # Consume as we go so a check listed twice sees its own first use;
                    # the snapshot lets the whole decision be undone exactly.
                    snapshots.append((state, state[:]))
                    kernel.consume(state, now, check.cost)
            if not admitted:
                for state, saved in reversed(snapshots):
                    state[:] = saved
            outcomes = tuple(
                RuleOutcome(check, fits, *kernel.info(state, now, check.cost, fits))
                for (check, kernel, _, _), state, fits in zip(plan, states, verdicts, strict=True)
            )
        finally:
            for lock in reversed(locks):
                lock.release()
        return Decision(admitted, outcomes, "local")


def _touch(shard: _Shard, key: tuple[str, str], kernel: Kernel, now: float) -> State:
    """The key's state, created if new; marks it most recently used (under the shard lock)."""
    states = shard.states
    state = states.get(key)
    if state is None:
        state = states[key] = kernel.new_state(now)
        if len(states) > shard.capacity:
            states.popitem(last=False)  # the least recently used key goes
    else:
        states.move_to_end(key)
    return state
