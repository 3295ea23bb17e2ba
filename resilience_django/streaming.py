"""Streamed bodies stay under their request's bulkhead slot and deadline.

A view that returns a ``StreamingHttpResponse`` (or a ``FileResponse``) has
done only part of its work: the body is produced while the server sends it.
So the middleware wraps the body (the way Django's own middleware wraps
``streaming_content``): the slot goes back when the body ends, fails, or the
client goes away, and the body stops at the deadline.  The status line has
gone out by then, so a cut body simply ends early; it is counted in
``resilience_deadline_exceeded_total{route}``.

* Async bodies wait for each chunk at most until the deadline (an
  ``asyncio.timeout`` per chunk, so a chunk that never comes is cut too).
* Sync bodies are checked between chunks: a chunk that blocks cannot be
  interrupted, and nothing it yields after the deadline is sent.
* ``close()`` gives the slot back even when nobody iterated the body (a
  ``HEAD`` request, a client gone before the first chunk): Django calls it from
  ``response.close()`` for every body that has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import metrics
from .deadline import Deadline, _current
from .shedding.bulkhead import Permit

__all__ = ["guard_stream"]


class _Tail:
    """What one streamed body holds: its slot (given back once) and its deadline."""

    __slots__ = ("deadline", "ended", "permit")

    def __init__(self, permit: Permit | None, deadline: Deadline | None) -> None:
        self.permit = permit
        self.deadline = deadline  # None: the body may run as long as it likes
        self.ended = False

    def end(self) -> None:
        # The body's end and close() may both come (from different threads,
        # under ASGI): Permit.release() is itself once-only and thread-safe.
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


class _SyncBody:
    """A sync body checked against the deadline between chunks."""

    __slots__ = ("_chunks", "_tail")

    def __init__(self, chunks: Iterator[Any], tail: _Tail) -> None:
        self._chunks = chunks
        self._tail = tail

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        tail = self._tail
        if tail.ended:
            raise StopIteration
        deadline = tail.deadline
        if deadline is not None and deadline.expired():
            tail.cut()
            raise StopIteration
        # The body's own queries and calls see the budget it runs under (none
        # for an exempt stream), wherever the server iterates it.
        token = _current.set(deadline)
        try:
            chunk = next(self._chunks)
        except BaseException:  # StopIteration (the end) included
            tail.end()
            raise
        finally:
            _current.reset(token)
        if deadline is not None and deadline.expired():
            tail.cut()  # produced too late: nothing goes out past the deadline
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._tail.end()


class _AsyncBody:
    """An async body whose every chunk is awaited at most until the deadline."""

    __slots__ = ("_chunks", "_tail")

    def __init__(self, chunks: AsyncIterator[Any], tail: _Tail) -> None:
        self._chunks = chunks
        self._tail = tail

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        tail = self._tail
        if tail.ended:
            raise StopAsyncIteration
        deadline = tail.deadline
        token = _current.set(deadline)
        try:
            if deadline is None:
                return await self._chunks.__anext__()
            left = deadline.remaining()
            if left <= 0:
                tail.cut()
                raise StopAsyncIteration
            timeout = asyncio.timeout(left)
            try:
                async with timeout:
                    return await self._chunks.__anext__()
            except TimeoutError:
                if not timeout.expired():
                    raise  # the body's own timeout, not ours
                tail.cut()
                raise StopAsyncIteration from None
        except StopAsyncIteration:
            tail.end()
            raise
        except BaseException:  # failed, or cancelled because the client went away
            tail.end()
            raise
        finally:
            _current.reset(token)

    def close(self) -> None:
        # Sync on purpose: Django's response.close() calls every body's close().
        self._tail.end()


def guard_stream(response: Any, *, permit: Permit | None, deadline: Deadline | None) -> None:
    """Wrap ``response.streaming_content`` so ``permit`` is held until the body ends
    and the body stops at ``deadline`` (either may be ``None``: not held, not bound)."""
    tail = _Tail(permit, deadline)
    if getattr(response, "is_async", False):
        response.streaming_content = _AsyncBody(response.streaming_content, tail)
    else:
        response.streaming_content = _SyncBody(response.streaming_content, tail)
