"""Streamed bodies stay under their request's bulkhead slot and deadline until they end
(docs/deadlines.md, "Streamed responses")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import metrics
from .deadline import Deadline, _current
from .shedding.bulkhead import Permit

__all__ = ["guard_stream"]


class _Body:
    """A streamed body's wrapper: it holds the slot (given back once) and the deadline."""

    __slots__ = ("_chunks", "deadline", "ended", "permit")

    def __init__(self, chunks: Any, permit: Permit | None, deadline: Deadline | None) -> None:
        self._chunks = chunks
        self.permit = permit
        self.deadline = deadline  # None: the body may run as long as it likes
        self.ended = False

    def end(self) -> None:
        # The body's end and close() may both come, from different threads under ASGI:
        # Permit.release() is itself once-only and thread-safe.
        self.ended = True
        permit = self.permit
        if permit is not None:
            self.permit = None
            permit.release()

    def cut(self) -> None:
        deadline = self.deadline
        assert deadline is not None
        metrics.deadline_exceeded(deadline.route, budget=deadline.budget)
        self.end()

    # Sync for both kinds: Django's response.close() calls every body's close().
    close = end


class _SyncBody(_Body):
    """A sync body checked against the deadline between chunks."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.ended:
            raise StopIteration
        deadline = self.deadline
        if deadline is not None and deadline.expired():
            self.cut()
            raise StopIteration
        # The body's queries and calls see its budget, wherever the server iterates it.
        token = _current.set(deadline)
        try:
            chunk = next(self._chunks)
        except BaseException:  # StopIteration (the end) included
            self.end()
            raise
        finally:
            _current.reset(token)
        if deadline is not None and deadline.expired():
            self.cut()  # produced too late: nothing goes out past the deadline
            raise StopIteration
        return chunk


class _AsyncBody(_Body):
    """An async body whose every chunk is awaited at most until the deadline."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.ended:
            raise StopAsyncIteration
        deadline = self.deadline
        token = _current.set(deadline)
        try:
            if deadline is None:
                return await self._chunks.__anext__()
            left = deadline.remaining()
            if left <= 0:
                self.cut()
                raise StopAsyncIteration
            timeout = asyncio.timeout(left)
            try:
                async with timeout:
                    return await self._chunks.__anext__()
            except TimeoutError:
                if not timeout.expired():
                    raise  # the body's own timeout, not ours
                self.cut()
                raise StopAsyncIteration from None
        except BaseException:  # the end, a failure, or cancelled: the client went away
            self.end()
            raise
        finally:
            _current.reset(token)


def guard_stream(response: Any, *, permit: Permit | None, deadline: Deadline | None) -> None:
    """Wrap ``response.streaming_content`` so ``permit`` is held until the body ends
    and the body stops at ``deadline`` (either may be ``None``: not held, not bound)."""
    body = _AsyncBody if getattr(response, "is_async", False) else _SyncBody
    response.streaming_content = body(response.streaming_content, permit, deadline)
