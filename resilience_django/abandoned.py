"""Sync views answered 504 at their deadline keep their slot until their thread ends
(why, and how that is noticed: docs/deadlines.md, "Abandoned sync views")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from asgiref.sync import sync_to_async

from . import metrics
from .shedding.bulkhead import Permit

__all__ = ["hold_until_thread_ends", "leave"]

logger = logging.getLogger("resilience_django.deadline")

# Strong references to work that outlived its answer (the loop keeps weak ones).
_background: set[asyncio.Future[None]] = set()


def leave(task: asyncio.Future[None], *, route: str | None) -> None:
    """Let ``task`` finish on its own; count it meanwhile (unless ``route`` is ``None``),
    and retrieve its outcome."""

    def done(task: asyncio.Future[None]) -> None:
        if task in _background:
            _background.discard(task)
            if route is not None:
                metrics.abandoned_views(route, -1)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("the app failed after its deadline's answer", exc_info=task.exception())

    if task.done():
        done(task)
        return
    if route is not None:
        metrics.abandoned_views(route, 1)
    _background.add(task)
    task.add_done_callback(done)


def hold_until_thread_ends(
    route: str | None, permit: Permit | None, trial: Callable[[], None] | None = None
) -> None:
    """Count an abandoned sync view of ``route``; release ``permit`` and ``trial`` when its
    thread ends.  Call it in the request's task (its context names the request's thread);
    ``route`` ``None``: the client went away, nothing counted, the slot held all the same."""
    leave(asyncio.get_running_loop().create_task(_wait(permit, trial)), route=route)


async def _wait(permit: Permit | None, trial: Callable[[], None] | None) -> None:
    try:
        # Runs on the request's thread once the abandoned view has left it.
        await sync_to_async(lambda: None, thread_sensitive=True)()
    except Exception:  # never a "Task exception was never retrieved"
        logger.debug("could not wait for an abandoned view's thread", exc_info=True)
    finally:
        if permit is not None:
            permit.release()
        if trial is not None:
            trial()
