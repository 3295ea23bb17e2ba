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
    """How fast one rule lets requests through; ``burst``, the most requests admitted at
    once (token bucket and GCRA; default ``rate.limit``), is ignored by the sliding window."""

    name: str
    rate: Rate
    algorithm: Algorithm = Algorithm.SLIDING_WINDOW
    burst: int | None = None

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.rate.limit


# The per-request answers: mutable only so their ``__init__`` stays plain (a frozen
# dataclass's costs twice as much); read-only by convention.
@dataclass(slots=True, unsafe_hash=True)
class LimitCheck:
    """One rule applied to one client key, for one request."""

    policy: Policy
    key: str
    cost: int = 1


@dataclass(slots=True, unsafe_hash=True)
class RuleOutcome:
    """The answer for one check, for the ``RateLimit`` and ``Retry-After`` headers:
    ``remaining`` is how many more requests would be admitted now, ``reset_after`` the
    seconds until the quota is full again, ``retry_after`` the seconds until a rejected
    request could pass (0 when admitted)."""

    check: LimitCheck
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(slots=True, unsafe_hash=True)
class Decision:
    """All-or-nothing answer for a request's checks."""

    allowed: bool
    outcomes: tuple[RuleOutcome, ...]
    backend: str = "local"

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

    async def adecide_with_shadow(
        self, checks: tuple[LimitCheck, ...], shadow: tuple[LimitCheck, ...]
    ) -> tuple[Decision, Decision | None]: ...
