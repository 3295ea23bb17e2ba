"""Chaos knobs for the demo's downstreams: added latency, an error rate, an outage.

They live in the ``default`` cache, which the demo's settings make a shared
one (a directory on disk, or Redis with ``REDIS_URL``), so every worker sees
a knob the moment it is set: a LocMemCache would keep it in one process.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import cache

__all__ = ["MAX_LATENCY", "SERVICES", "Knobs", "aknobs", "clear_all", "knobs", "set_knobs"]

SERVICES = ("pricing", "inventory", "risk")
MAX_LATENCY = 5.0  # seconds; more teaches nothing the deadline has not shown by then
_PREFIX = "demo-chaos:"


@dataclass(frozen=True)
class Knobs:
    latency: float = 0.0  # seconds added before answering
    error_rate: float = 0.0  # share of answers that are a 503
    outage: bool = False  # every answer is a 503 with Retry-After

    def __post_init__(self) -> None:
        if not 0.0 <= self.latency <= MAX_LATENCY:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY:g} s")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")

    @property
    def calm(self) -> bool:
        return self == Knobs()


def _decode(raw: Any) -> Knobs:
    if not isinstance(raw, dict):
        return Knobs()
    try:
        return Knobs(
            latency=float(raw.get("latency", 0.0)),
            error_rate=float(raw.get("error_rate", 0.0)),
            outage=bool(raw.get("outage", False)),
        )
    except (TypeError, ValueError):
        return Knobs()  # a corrupt entry must not take the demo down


def knobs(service: str) -> Knobs:
    """The knobs of ``service`` (all calm when none were set)."""
    return _decode(cache.get(_PREFIX + service))


async def aknobs(service: str) -> Knobs:
    """``knobs()`` for async views: the cache read runs off the event loop.

    In a worker thread of its own, not through ``cache.aget``: that one queues
    behind every sync view and middleware on Django's single thread-sensitive
    executor, and a downstream must not wait for an admin page to answer.
    """
    return _decode(await asyncio.to_thread(cache.get, _PREFIX + service))


def set_knobs(service: str, value: Knobs) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    if value.calm:
        cache.delete(_PREFIX + service)
    else:
        cache.set(_PREFIX + service, asdict(value), timeout=None)


def clear_all() -> None:
    cache.delete_many([_PREFIX + s for s in SERVICES])
