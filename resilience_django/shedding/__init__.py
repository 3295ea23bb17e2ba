"""Load shedding: bulkheads with bounded queues, adaptive limits, rules (docs/shedding.md)."""

from __future__ import annotations

from .adaptive import AdaptiveLimit
from .bulkhead import Bulkhead, Permit, Shed
from .rules import SheddingRule, parse_shedding_rule, parse_shedding_rules
from .shedder import Shedder

__all__ = [
    "AdaptiveLimit", "Bulkhead", "Permit", "Shed", "Shedder", "SheddingRule", "parse_shedding_rule",
    "parse_shedding_rules",
]  # fmt: skip
