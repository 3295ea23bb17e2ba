"""Chaos knobs for the demo's downstreams, kept in the cache so every worker sees them."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Knobs:
    latency: float = 0.0
    error_rate: float = 0.0
    outage: bool = False


def knobs(service: str) -> Knobs:
    raw = cache.get(f"demo-chaos:{service}")
    return Knobs(**raw) if raw else Knobs()


def set_knobs(service: str, knobs: Knobs) -> None:
    cache.set(f"demo-chaos:{service}", knobs.__dict__, timeout=None)
