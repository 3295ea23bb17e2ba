"""The rate-limit response headers (IETF draft ``draft-ietf-httpapi-ratelimit-headers``).

``RateLimit-Policy: "name";q=100;w=60`` describes each rule (quota ``q`` per
window ``w`` seconds); ``RateLimit: "name";r=0;t=12`` says what is left
(``r``) and in how many seconds it comes back (``t``).  Several rules are
listed comma-separated in one header.  ``Retry-After`` is an integer, rounded
up, so a client that waits exactly that long is never turned away again for
our rounding: it is never earlier than the real reset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .decision import Policy, RuleOutcome

__all__ = ["POLICY_HEADER", "RATELIMIT_HEADER", "build_headers", "retry_after_header", "seconds"]

POLICY_HEADER = "RateLimit-Policy"
RATELIMIT_HEADER = "RateLimit"

_ceil = math.ceil


def seconds(value: float) -> int:
    """Whole seconds, rounded up, never negative."""
    return _ceil(value) if value > 0 else 0


def retry_after_header(retry_after: float) -> str:
    """The ``Retry-After`` value: at least 1 second for a rejection."""
    return str(max(1, seconds(retry_after)))


# id(policy) -> (policy, its RateLimit-Policy item): the item never changes for
# a policy, and policies live as long as their rules.
_policy_texts: dict[int, tuple[Policy, str]] = {}


def _policy_text(policy: Policy) -> tuple[Policy, str]:
    rate = policy.rate
    entry = (policy, f'"{policy.name}";q={rate.limit};w={max(1, seconds(rate.period))}')
    if len(_policy_texts) >= 4096:
        _policy_texts.clear()
    _policy_texts[id(policy)] = entry
    return entry


def build_headers(outcomes: Iterable[RuleOutcome]) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` for the given outcomes (empty if none)."""
    policies: list[str] = []
    limits: list[str] = []
    for outcome in outcomes:
        policy = outcome.check.policy
        name = policy.name
        cached = _policy_texts.get(id(policy))
        if cached is None or cached[0] is not policy:
            cached = _policy_text(policy)
        policies.append(cached[1])
        reset = outcome.reset_after
        if not outcome.allowed and outcome.retry_after > reset:
            reset = outcome.retry_after
        limits.append(f'"{name}";r={outcome.remaining};t={seconds(reset)}')
    if not policies:
        return []
    return [(POLICY_HEADER, ", ".join(policies)), (RATELIMIT_HEADER, ", ".join(limits))]
