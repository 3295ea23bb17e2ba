"""What a limiter is asked and what it answers, shared by every store.

A request is checked against every rule that matches it in one call, and the
answer is all-or-nothing: if one rule rejects, no rule is consumed.  The local
store, the Redis store and the hybrid fallback all take a sequence of
``LimitCheck`` and give back one ``Decision``.
"""

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


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One rule applied to one client key, for one request."""

    policy: Policy
    key: str
    cost: int = 1


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """The answer for one check.

    ``remaining`` is how many more requests would be admitted now,
    ``reset_after`` the seconds until the quota is full again and
    ``retry_after`` the seconds until a rejected request could pass (0 when
    admitted).  These feed the ``RateLimit`` and ``Retry-After`` headers.
    """

    check: LimitCheck
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class Decision:
    """All-or-nothing answer for a request's checks."""

    allowed: bool
    outcomes: tuple[RuleOutcome, ...]
    backend: str = "local"

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
