"""The ``RateLimit-Policy`` and ``RateLimit`` values (IETF draft
``draft-ietf-httpapi-ratelimit-headers``; docs/limits.md, "Answers and headers")."""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

from .decision import Policy, RuleOutcome

__all__ = ["POLICY_HEADER", "RATELIMIT_HEADER", "build_headers", "raw_headers"]

POLICY_HEADER = "RateLimit-Policy"
RATELIMIT_HEADER = "RateLimit"


# id(policy) -> (policy, its RateLimit-Policy item, the start of its RateLimit
# item): both are fixed for a policy, and policies live as long as their rules.
_policy_texts: dict[int, tuple[Policy, str, str]] = {}


def _items(outcome: RuleOutcome) -> tuple[str, str]:
    policy = outcome.check.policy
    entry = _policy_texts.get(id(policy))
    if entry is None or entry[0] is not policy:
        name, rate = policy.name, policy.rate
        quota = f'"{name}";q={rate.limit};w={max(1, ceil(rate.period))}'
        entry = (policy, quota, f'"{name}";r=')
        if len(_policy_texts) >= 4096:
            _policy_texts.clear()
        _policy_texts[id(policy)] = entry
    reset = outcome.reset_after
    if not outcome.allowed and outcome.retry_after > reset:
        reset = outcome.retry_after
    return entry[1], f"{entry[2]}{outcome.remaining};t={ceil(reset) if reset > 0 else 0}"


def build_headers(outcomes: Sequence[RuleOutcome]) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` for the given outcomes (empty if none)."""
    if len(outcomes) == 1:  # the common case, without the joins
        policy_item, item = _items(outcomes[0])
        return [(POLICY_HEADER, policy_item), (RATELIMIT_HEADER, item)]
    if not outcomes:
        return []
    pairs = [_items(o) for o in outcomes]
    return [
        (POLICY_HEADER, ", ".join(p for p, _ in pairs)),
        (RATELIMIT_HEADER, ", ".join(r for _, r in pairs)),
    ]


_POLICY_RAW = POLICY_HEADER.encode()
_RATELIMIT_RAW = RATELIMIT_HEADER.encode()


def raw_headers(outcomes: Sequence[RuleOutcome]) -> list[tuple[bytes, bytes]]:
    """``build_headers`` as ASGI header bytes (rule names are ASCII: see ``RULE_NAME``)."""
    if len(outcomes) == 1:
        policy_item, item = _items(outcomes[0])
        return [(_POLICY_RAW, policy_item.encode()), (_RATELIMIT_RAW, item.encode())]
    return [(name.encode(), value.encode()) for name, value in build_headers(outcomes)]
