"""Load shedding: concurrency limits (bulkheads) with bounded queues, adaptive limits, rules.

The middleware picks the rule for a request, asks its bulkhead for a slot
with ``acquire_async`` / ``acquire_sync`` and answers 503 + ``Retry-After``
when it gets a ``Shed`` back.
"""

from __future__ import annotations

from .adaptive import AdaptiveLimit
from .bulkhead import Bulkhead, Permit, Shed
from .rules import SheddingRule, parse_shedding_rule, parse_shedding_rules

__all__ = [
    "AdaptiveLimit",
    "Bulkhead",
    "Permit",
    "Shed",
    "SheddingRule",
    "parse_shedding_rule",
    "parse_shedding_rules",
]
