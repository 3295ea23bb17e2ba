"""The in-process limiter: a bounded LRU of per-key states behind striped locks.

``LocalLimiter`` implements the ``Limiter`` protocol of ``decision.py`` with
the kernels of ``algorithms.py``.  States are keyed by ``(policy, client key)``
in ``stripes`` shards, each an ``OrderedDict`` used as an LRU with its own
lock, so threads deciding for different keys rarely wait on one another and
no single lock serialises every request.  A decision over several checks
takes the locks of the shards involved in ascending shard order, so two
concurrent multi-key decisions can never deadlock.

Memory is bounded: each shard holds at most ``max_keys // stripes`` keys and
evicts its least recently used key beyond that, so a flood of a million
distinct client IPs costs at most ``max_keys`` states.  Measured with
tracemalloc over 20,000 IPv4 keys (``tests/limiting/test_local.py`` asserts a
ceiling, ``benchmarks/bench_local_limits.py`` prints the figure): about 380-410
bytes per key for a sliding window (the ring list of 13 ints, the key tuple
and string, the LRU entry), about 280-310 for token bucket and GCRA; the
default 100,000 keys stay under about 40 MB.  An evicted key simply starts
afresh, which errs on the side of admitting: eviction only reaches keys idle
for longer than every other key in its shard.

Locks: ``decide`` (sync code, any thread) takes the shard lock; with the C
kernels built it is the C ``ShardLock``, which the C decision step takes
without a method call.  ``adecide`` takes none while the event loop's thread
is the only one deciding, which is the pure-async deployment; the first
decision from any other thread turns locking on for good (see
``_lock_from_now_on``; the C step for the loop follows the same hand-off).
``thread_safe=False`` never locks, for callers that promise a single thread.

Decisions are all-or-nothing: when one check fails, the states touched are
restored from snapshots taken under the locks, so no rule is consumed.
"""

from __future__ import annotations

import threading
import time
from _thread import get_ident as _get_ident
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .algorithms import Kernel, State, kernel_for
from .decision import ALLOW_ALL, Decision, LimitCheck, Policy, RuleOutcome
from .speedups import speedups

__all__ = ["LocalLimiter"]

_outcome = RuleOutcome
_decision: Callable[[bool, tuple[RuleOutcome, ...], str], Decision] = Decision
# Marks a limiter built with thread_safe=False: it never locks.
_NO_LOCKING = threading.Lock()


# A compiled policy: (policy, kernel, store-key prefix).  The kernel tag is in
# the prefix so a rule edited to another algorithm or period starts with fresh
# state instead of misreading the old one.  A tuple, because the C step reads it.
_Compiled = tuple[Policy, Kernel, str]


class _PyHandOff:
    """The lock hand-off's flags (see ``LocalLimiter._lock_from_now_on``)."""

    __slots__ = ("busy", "drained", "locking", "loop_thread")

    def __init__(self) -> None:
        self.loop_thread = 0  # the event loop thread's ident; 0 until one decides
        self.locking = False  # on for good once another thread decides
        self.drained = False  # the loop's unlocked decision in flight, if any, is over
        self.busy = False  # the loop is making an unlocked decision


_HandOff: Callable[[], Any] = _PyHandOff if speedups is None else speedups.HandOff


class _Shard:
    __slots__ = ("acquire", "capacity", "lock", "release", "states")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # The C lock where built: the C decision step takes it without a method call.
        self.lock: Any = threading.Lock() if speedups is None else speedups.ShardLock()
        # Bound once: acquire()/release() cost half of a ``with`` block here.
        self.acquire = self.lock.acquire
        self.release = self.lock.release
        self.states: OrderedDict[tuple[str, str], State] = OrderedDict()


class LocalLimiter:
    """Decide limits in this process.

    >>> from resilience_django.clock import ManualClock
    >>> from resilience_django.units import parse_rate
    >>> limiter = LocalLimiter(clock=ManualClock())
    >>> check = LimitCheck(Policy("login", parse_rate("2/m")), "10.0.0.1")
    >>> [limiter.decide((check,)).allowed for _ in range(3)]
    [True, True, False]
    """

    __slots__ = (
        "_clock",
        "_compiled",
        "_gate",
        "_init_lock",
        "_mask",
        "_plain_shards",
        "_shards",
        "max_keys",
    )

    backend = "local"
    _MAX_COMPILED = 4096

    def __init__(
        self,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        stripes: int = 16,
        thread_safe: bool = True,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        # Shards are a power of two (a mask picks one) and hold at least 64 keys
        # each, so a small store is one exact LRU rather than many tiny ones.
        count = 1
        while count * 2 <= stripes and max_keys // (count * 2) >= 64:
            count *= 2
        self.max_keys = max_keys
        self._mask = count - 1
        self._shards = tuple(_Shard(max_keys // count) for _ in range(count))
        # The same shards as plain tuples, for the single-check step.
        self._plain_shards = tuple((s.states, s.capacity, s.lock) for s in self._shards)
        self._clock = clock
        self._compiled: dict[Any, _Compiled] = {}
        # Lock hand-off (see _lock_from_now_on): ``locking`` False means every
        # decision so far ran on one event loop thread, ``loop_thread`` (0: none yet).
        self._gate = _HandOff()
        # thread_safe=False: the caller promises a single thread; never lock.
        self._init_lock = threading.Lock() if thread_safe else _NO_LOCKING

    def __len__(self) -> int:
        """How many keys are stored now."""
        return sum(len(shard.states) for shard in self._shards)

    def clear(self) -> None:
        """Forget every key (tests, and rules reloaded with new semantics)."""
        for shard in self._shards:
            with shard.lock:
                shard.states.clear()

    def _compile(self, policy: Policy, share: float) -> _Compiled:
        kernel = kernel_for(policy, share)
        compiled = (policy, kernel, f"{policy.name}\x1f{kernel.tag}")
        cache = self._compiled
        if len(cache) >= self._MAX_COMPILED:
            # Policies rebuilt on every settings reload would otherwise pile up.
            cache.clear()
        cache[id(policy) if share == 1.0 else (id(policy), share)] = compiled
        return compiled

    # -- the lock hand-off -------------------------------------------------------
    #
    # A shard lock costs 0.2-0.4 µs here, as much as the rest of a decision.  On
    # the pure-async path every decision runs on the event loop thread, one at a
    # time, and needs no lock.  So ``adecide`` skips the locks while it is the
    # only user; the first call from any other thread (a sync view in a thread
    # pool, a second loop) turns locking on for good, after waiting out an
    # unlocked decision in flight.  The two flags form a Dekker-style
    # hand-off, correct because the GIL orders these attribute reads and writes:
    # the loop sets ``busy`` before it reads ``locking``; the other thread sets
    # ``locking`` before it reads ``busy``.  One of them sees the other.  Every
    # thread waits out the loop's decision in flight, not only the one that turned
    # locking on: ``drained`` says the wait is over, and until it is set a thread
    # that finds ``locking`` already on waits as well (else it could decide beside
    # an unlocked multi-check decision the loop is still making).  The flags live
    # in a ``_HandOff`` (the C one when built, which the C step reads directly).

    def _lock_from_now_on(self) -> None:
        gate = self._gate
        gate.locking = True
        while gate.busy:
            time.sleep(0)
        gate.drained = True

    def _may_skip_locks(self) -> bool:
        gate = self._gate
        if gate.locking:
            return False
        if self._init_lock is _NO_LOCKING:
            return True
        ident = _get_ident()
        owner = gate.loop_thread
        if not owner:
            with self._init_lock:
                if not gate.loop_thread:
                    gate.loop_thread = ident
                owner = gate.loop_thread
        if owner != ident:
            self._lock_from_now_on()
            return False
        return True

    # -- deciding ---------------------------------------------------------------

    def decide(self, checks: tuple[LimitCheck, ...], share: float = 1.0) -> Decision:
        """Admit the request iff every check fits; consume nothing otherwise.

        ``share`` scales every policy to ``max(1, floor(limit * share))`` (the
        Redis fallback enforces ``1 / live instances`` of a global limit).
        Safe from any thread.
        """
        if not self._gate.drained:
            if self._init_lock is _NO_LOCKING:
                return self._decide_unlocked(checks, share)
            self._lock_from_now_on()
        if len(checks) == 1 and share == 1.0:  # nearly every request
            decision = _decide_single(
                self._plain_shards, self._mask, self._compiled, checks[0], self._clock(), True
            )
            if decision is not None:
                return decision
        return self._decide_slowly(checks, share, True)

    async def adecide(self, checks: tuple[LimitCheck, ...], share: float = 1.0) -> Decision:
        """``decide`` for the event loop: it never waits on I/O, so it runs inline.

        While only this loop's thread decides, no lock is taken at all.
        """
        return self.decide_on_loop(checks, share)

    def decide_on_loop(self, checks: tuple[LimitCheck, ...], share: float = 1.0) -> Decision:
        """``adecide`` without the coroutine, for callers already on the event loop.

        The engine calls this directly: a coroutine per request costs as much
        as a third of the decision.
        """
        if _decide_single_on_loop is not None and len(checks) == 1 and share == 1.0:
            # The C step does the hand-off itself, lock-free while the loop is alone.
            decision = _decide_single_on_loop(
                self._plain_shards, self._mask, self._compiled, checks[0], self._clock(), self._gate
            )
            if decision is not None:
                return decision
        gate = self._gate
        if (gate.locking or gate.loop_thread != _get_ident()) and not self._may_skip_locks():
            return self.decide(checks, share)
        gate.busy = True
        try:
            if not gate.locking:  # else another thread arrived between the two reads
                return self._decide_unlocked(checks, share)
        finally:
            gate.busy = False
        return self.decide(checks, share)  # after busy is cleared: decide waits for it

    def admit(self, policy: Policy, key: str, cost: int = 1) -> bool:
        """Yes or no for one policy and key, without building a ``Decision``.

        The leanest path, for callers that need no headers; safe from any thread.
        """
        if self._init_lock is not _NO_LOCKING and not self._gate.drained:
            self._lock_from_now_on()
        now = self._clock()
        compiled = self._compiled.get(id(policy))
        if compiled is None or compiled[0] is not policy:
            compiled = self._compile(policy, 1.0)
        store_key = (compiled[2], key)
        shard = self._shards[hash(store_key) & self._mask]
        shard.acquire()
        try:
            return _admit_one(shard.states, shard.capacity, store_key, compiled[1], now, cost)
        finally:
            shard.release()

    def decide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """Enforced checks all-or-nothing, shadow checks as a group of their own."""
        first = self.decide(checks) if checks else ALLOW_ALL
        return first, (self.decide(shadow) if shadow else None)

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        first = await self.adecide(checks) if checks else ALLOW_ALL
        return first, (await self.adecide(shadow) if shadow else None)

    def refund(self, decision: Decision, share: float = 1.0) -> None:
        """Undo an admitted decision made moments ago by this store.

        For a request whose rules span two stores (local, then Redis): when the
        second rejects, the first gives back what it took, so the request's
        decision stays all-or-nothing.  Safe from any thread.
        """
        if not decision.allowed:
            return
        if self._init_lock is not _NO_LOCKING and not self._gate.drained:
            self._lock_from_now_on()
        now = self._clock()
        for outcome in decision.outcomes:
            check = outcome.check
            _, kernel, prefix = self._compiled_for(check.policy, share)
            key = (prefix, check.key)
            shard = self._shards[hash(key) & self._mask]
            shard.acquire()
            try:
                state = shard.states.get(key)
                if state is not None:  # evicted meanwhile: nothing left to give back
                    kernel.refund(state, now, check.cost)
            finally:
                shard.release()

    def _decide_unlocked(self, checks: tuple[LimitCheck, ...], share: float) -> Decision:
        if len(checks) == 1 and share == 1.0:
            decision = _decide_single(
                self._plain_shards, self._mask, self._compiled, checks[0], self._clock(), False
            )
            if decision is not None:
                return decision
        return self._decide_slowly(checks, share, False)

    def _decide_slowly(
        self, checks: tuple[LimitCheck, ...], share: float, locked: bool
    ) -> Decision:
        """A first decision for a policy, a fallback share, or several checks."""
        if len(checks) != 1:
            return self._decide_many(checks, share, locked)
        check = checks[0]
        now = self._clock()
        _, kernel, prefix = self._compiled_for(check.policy, share)
        key = (prefix, check.key)
        shard = self._shards[hash(key) & self._mask]
        if locked:
            shard.acquire()
        try:
            return _decide_one(shard.states, shard.capacity, key, kernel, now, check)
        finally:
            if locked:
                shard.release()

    def _compiled_for(self, policy: Policy, share: float) -> _Compiled:
        compiled = self._compiled.get(id(policy) if share == 1.0 else (id(policy), share))
        if compiled is None or compiled[0] is not policy:
            compiled = self._compile(policy, share)
        return compiled

    def _decide_many(self, checks: tuple[LimitCheck, ...], share: float, locked: bool) -> Decision:
        if not checks:
            return ALLOW_ALL
        now = self._clock()
        mask = self._mask
        plan: list[tuple[LimitCheck, Kernel, tuple[str, str], _Shard]] = []
        indexes: set[int] = set()
        for check in checks:
            _, kernel, prefix = self._compiled_for(check.policy, share)
            key = (prefix, check.key)
            index = hash(key) & mask
            indexes.add(index)
            plan.append((check, kernel, key, self._shards[index]))
        # Ascending shard order: any two decisions take shared locks in the same
        # order, which is what rules out a deadlock.
        locks = [self._shards[i].lock for i in sorted(indexes)] if locked else []
        for lock in locks:
            lock.acquire()
        try:
            return self._decide_locked(plan, now)
        finally:
            for lock in reversed(locks):
                lock.release()

    @staticmethod
    def _decide_locked(
        plan: list[tuple[LimitCheck, Kernel, tuple[str, str], _Shard]], now: float
    ) -> Decision:
        states = [_touch(s.states, s.capacity, key, kernel, now) for _, kernel, key, s in plan]
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
            _outcome(check, fits, *kernel.info(state, now, check.cost, fits))
            for (check, kernel, _, _), state, fits in zip(plan, states, verdicts, strict=True)
        )
        return _decision(admitted, outcomes, "local")


def _touch(
    states: OrderedDict[tuple[str, str], State],
    capacity: int,
    key: tuple[str, str],
    kernel: Kernel,
    now: float,
) -> State:
    """The key's state, created if new; marks it most recently used."""
    state = states.get(key)
    if state is None:
        state = kernel.new_state(now)
        states[key] = state
        if len(states) > capacity:
            states.popitem(last=False)  # the least recently used key goes
    else:
        states.move_to_end(key)
    return state


# The single-check step under the shard lock: one C call where _speedups is
# built (the same steps: touch the LRU entry, run the kernel, build the
# answer), else these Python functions.


def _py_decide_one(
    states: OrderedDict[tuple[str, str], State],
    capacity: int,
    key: tuple[str, str],
    kernel: Kernel,
    now: float,
    check: LimitCheck,
) -> Decision:
    outcome = kernel.outcome(_touch(states, capacity, key, kernel, now), now, check)
    return _decision(outcome.allowed, (outcome,), "local")


def _py_admit_one(
    states: OrderedDict[tuple[str, str], State],
    capacity: int,
    key: tuple[str, str],
    kernel: Kernel,
    now: float,
    cost: int,
) -> bool:
    return kernel.acquire(_touch(states, capacity, key, kernel, now), now, cost)


def _py_decide_single(
    shards: tuple[tuple[OrderedDict[tuple[str, str], State], int, threading.Lock], ...],
    mask: int,
    compiled: dict[Any, _Compiled],
    check: LimitCheck,
    now: float,
    locked: bool,
) -> Decision | None:
    """``LocalLimiter.decide`` for one check, or None when its policy is not compiled yet."""
    policy = check.policy
    entry = compiled.get(id(policy))
    if entry is None or entry[0] is not policy:
        return None
    key = (entry[2], check.key)
    states, capacity, lock = shards[hash(key) & mask]
    if not locked:
        return _py_decide_one(states, capacity, key, entry[1], now, check)
    with lock:
        return _py_decide_one(states, capacity, key, entry[1], now, check)


_decide_single: Callable[..., Decision | None] = _py_decide_single
_decide_single_on_loop: Callable[..., Decision | None] | None = None
_decide_one: Callable[..., Decision] = _py_decide_one
_admit_one: Callable[..., bool] = _py_admit_one
if speedups is not None:
    _decide_single = speedups.decide_single
    _decide_single_on_loop = speedups.decide_single_on_loop
    _decide_one = speedups.decide_one
    _admit_one = speedups.admit_one
    _decision = speedups.decision
