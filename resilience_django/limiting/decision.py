"""What a limiter is asked (``LimitCheck``) and answers (``Decision``), for every store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

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


class _Value:
    """Equality, hashing, pickling and repr from ``_fields``, for the per-request answers.

    Read-only by convention: a frozen dataclass's ``__init__`` would cost twice as much.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Value) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[type[_Value], tuple[object, ...]]:
        return type(self), self._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({fields})"


class LimitCheck(_Value):
    """One rule applied to one client key, for one request."""

    __slots__ = ("cost", "key", "policy")
    _fields = ("policy", "key", "cost")

    def __init__(self, policy: Policy, key: str, cost: int = 1) -> None:
        self.policy = policy
        self.key = key
        self.cost = cost


_OUTCOME_FIELDS = ("check", "allowed", "remaining", "reset_after", "retry_after")
_DECISION_FIELDS = ("allowed", "outcomes", "backend")


class RuleOutcome(_Value):
    """The answer for one check.

    ``remaining`` is how many more requests would be admitted now,
    ``reset_after`` the seconds until the quota is full again and
    ``retry_after`` the seconds until a rejected request could pass (0 when
    admitted).  These feed the ``RateLimit`` and ``Retry-After`` headers.
    """

    __slots__ = _OUTCOME_FIELDS
    _fields = _OUTCOME_FIELDS

    def __init__(
        self, check: LimitCheck, allowed: bool, remaining: int, reset_after: float,
        retry_after: float,
    ) -> None:  # fmt: skip
        self.check = check
        self.allowed = allowed
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after


class Decision(_Value):
    """All-or-nothing answer for a request's checks."""

    __slots__ = _DECISION_FIELDS
    _fields = _DECISION_FIELDS

    def __init__(
        self, allowed: bool, outcomes: tuple[RuleOutcome, ...], backend: str = "local"
    ) -> None:
        self.allowed = allowed
        self.outcomes = outcomes
        self.backend = backend

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
