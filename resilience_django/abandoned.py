"""Sync views answered 504 at their deadline keep their slot until their thread ends
(why, and how that is noticed: docs/deadlines.md, "Abandoned sync views")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from asgiref.sync import sync_to_async

from . import metrics
from .shedding.bulkhead import Permit

__all__ = ["hold_until_thread_ends"]

logger = logging.getLogger("resilience_django.deadline")

# Strong references: the loop keeps only weak ones to running tasks.
_waiting: set[asyncio.Task[None]] = set()


def _nothing() -> None:
    """Runs on the request's thread once the abandoned view has left it."""


def hold_until_thread_ends(
    route: str | None, permit: Permit | None, trial: Callable[[], None] | None = None
) -> None:
    """Count an abandoned sync view of ``route``; release ``permit`` and ``trial`` when its
    thread ends.  Call it in the request's task (its context names the request's thread);
    ``route`` ``None``: the client went away, nothing counted, the slot held all the same."""
    if route is not None:
        metrics.abandoned_views(route, 1)
    task = asyncio.get_running_loop().create_task(_wait(route, permit, trial))
    _waiting.add(task)
    task.add_done_callback(_waiting.discard)


async def _wait(route: str | None, permit: Permit | None, trial: Callable[[], None] | None) -> None:
    try:
        await sync_to_async(_nothing, thread_sensitive=True)()
    except Exception:  # never a "Task exception was never retrieved"
        logger.debug("could not wait for an abandoned view's thread", exc_info=True)
    finally:
        if permit is not None:
            permit.release()
        if trial is not None:
            trial()
        if route is not None:
            metrics.abandoned_views(route, -1)
