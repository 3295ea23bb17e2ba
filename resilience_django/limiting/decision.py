"""What a limiter is asked and what it answers, shared by every store.

A request is checked against every rule that matches it in one call, and the
answer is all-or-nothing: if one rule rejects, no rule is consumed.  The local
store, the Redis store and the hybrid fallback all take a sequence of
``LimitCheck`` and give back one ``Decision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, Protocol

from ..units import Rate

__all__ = ["Algorithm", "Decision", "LimitCheck", "Limiter", "Policy", "RuleOutcome"]


class Algorithm(StrEnum):
    SLIDING_WINDOW = "sliding_window"
    TOKEN_BUCKET = "token_bucket"
    GCRA = "gcra"


@dataclass(frozen=True, slots=True)
class Policy:
    """How fast one rule lets requests through.

    ``burst`` is the most requests admitted at once (token bucket and GCRA);
    it defaults to ``rate.limit``.  The sliding window ignores it.
    """

    name: str
    rate: Rate
    algorithm: Algorithm = Algorithm.SLIDING_WINDOW
    burst: int | None = None

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.rate.limit


class _Value(tuple):  # type: ignore[type-arg]
    """Base of the per-request answer objects: an immutable tuple with named fields.

    ``LimitCheck``, ``RuleOutcome`` and ``Decision`` are made for every
    request.  As tuple subclasses built with ``tuple.__new__`` they cost about
    half a slotted class with an ``__init__`` (0.16 against 0.33 µs each
    here), and their fields read through ``operator.itemgetter`` properties,
    which run in C.  The hot paths build them with ``_make(cls, values)``;
    everyone else calls the class with the usual arguments.  Two answers are
    equal when their types and fields are.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return tuple.__eq__(self, other)
        # A plain tuple with the same values is not the same answer; anything
        # else (mock.ANY, say) gets its own say.
        return False if isinstance(other, tuple) else NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __getnewargs__(self) -> tuple[object, ...]:
        # Pickle and copy rebuild through __new__ with the fields as arguments.
        return tuple(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({fields})"


# tuple.__new__ bound once: ``_make(RuleOutcome, (...))`` is the cheapest way to
# build one (no Python-level __new__ frame).
_make = tuple.__new__


class LimitCheck(_Value):
    """One rule applied to one client key, for one request."""

    __slots__ = ()
    _fields = ("policy", "key", "cost")
    if TYPE_CHECKING:
        policy: Policy
        key: str
        cost: int
    else:
        policy = property(itemgetter(0))
        key = property(itemgetter(1))
        cost = property(itemgetter(2))

    def __new__(cls, policy: Policy, key: str, cost: int = 1) -> LimitCheck:
        return _make(cls, (policy, key, cost))


class RuleOutcome(_Value):
    """The answer for one check.

    ``remaining`` is how many more requests would be admitted now,
    ``reset_after`` the seconds until the quota is full again and
    ``retry_after`` the seconds until a rejected request could pass (0 when
    admitted).  These feed the ``RateLimit`` and ``Retry-After`` headers.
    """

    __slots__ = ()
    _fields = ("check", "allowed", "remaining", "reset_after", "retry_after")
    if TYPE_CHECKING:
        check: LimitCheck
        allowed: bool
        remaining: int
        reset_after: float
        retry_after: float
    else:
        check = property(itemgetter(0))
        allowed = property(itemgetter(1))
        remaining = property(itemgetter(2))
        reset_after = property(itemgetter(3))
        retry_after = property(itemgetter(4))

    def __new__(
        cls, check: LimitCheck, allowed: bool, remaining: int, reset_after: float,
        retry_after: float,
    ) -> RuleOutcome:  # fmt: skip
        return _make(cls, (check, allowed, remaining, reset_after, retry_after))


class Decision(_Value):
    """All-or-nothing answer for a request's checks."""

    __slots__ = ()
    _fields = ("allowed", "outcomes", "backend")
    if TYPE_CHECKING:
        allowed: bool
        outcomes: tuple[RuleOutcome, ...]
        backend: str
    else:
        allowed = property(itemgetter(0))
        outcomes = property(itemgetter(1))
        backend = property(itemgetter(2))

    def __new__(
        cls, allowed: bool, outcomes: tuple[RuleOutcome, ...], backend: str = "local"
    ) -> Decision:
        return _make(cls, (allowed, outcomes, backend))

    @property
    def rejected_by(self) -> tuple[RuleOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.allowed)

    @property
    def retry_after(self) -> float:
        return max((o.retry_after for o in self.outcomes if not o.allowed), default=0.0)


ALLOW_ALL = Decision(allowed=True, outcomes=())


class Limiter(Protocol):
    """A store that decides; ``decide`` for sync callers, ``adecide`` for the event loop."""

    def decide(self, checks: tuple[LimitCheck, ...]) -> Decision: ...

    async def adecide(self, checks: tuple[LimitCheck, ...]) -> Decision: ...

    def decide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]:
        """Enforced ``checks`` all-or-nothing and ``shadow`` checks as a second group, in
        one round trip where the store has round trips; shadow never blocks."""
        ...

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]: ...
